"""DICOM in and out: coded segments, DICOM SEG and SR, SEG/RTSTRUCT input, and PACS transfer. Not for clinical use."""
