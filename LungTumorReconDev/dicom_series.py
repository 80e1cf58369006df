"""Writing a CT volume as a DICOM CT series (one file per slice), for tests and benchmarks.

A synthetic chest becomes a DICOM study that the pipeline, the DICOM writers and a PACS take
like a scanner's. The headers hold every attribute the CT Image IOD requires, so that what is
made from it (a SEG, an SR) is checked on its own merits by dciodvfy. Made-up patient: never
for anything but tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_ct_series(array: np.ndarray, geometry: VolumeGeometry, folder: str | Path, patient_id: str = "SYNTHETIC-1",
                    study_uid: str | None = None, series_uid: str | None = None) -> list[Path]:
    """Write a (k, j, i) HU volume as ``folder/slice_NNNN.dcm``, slice k at ``geometry``'s position.

    Args:
        array: HU values (rounded into int16).
        geometry: the grid; its direction's first two columns become ImageOrientationPatient.
        folder: created when missing.
        patient_id: the made-up subject's ID.
        study_uid, series_uid: new UIDs when None.

    Returns:
        The files, in k order.

    Examples:
        >>> g = VolumeGeometry((4, 3, 2), (0.7, 0.7, 2.5), (0.0, 0.0, 0.0))
        >>> import tempfile; files = write_ct_series(np.full(g.shape_kji, -1000), g, tempfile.mkdtemp())
        >>> len(files)
        2
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    direction = geometry.direction_matrix
    pixels = np.clip(np.rint(array), -32768, 32767).astype(np.int16)
    files = []
    for k in range(pixels.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Chest", patient_id, "", "O"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID = study_uid, "20260101", "120000", "1"
        ds.ReferringPhysicianName, ds.AccessionNumber = "", ""
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "CT", series_uid, 1
        ds.SeriesDescription, ds.PatientPosition, ds.BodyPartExamined = "synthetic chest", "FFS", "CHEST"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.Manufacturer = "LungTumorRecon synthetic"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.AcquisitionNumber, ds.InstanceNumber, ds.KVP = 1, k + 1, 120
        ds.ContentDate, ds.ContentTime = "20260101", "120000"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelSpacing = [float(geometry.spacing[1]), float(geometry.spacing[0])]  # row, column spacing
        ds.SliceThickness = float(geometry.spacing[2])
        ds.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.ImagePositionPatient = [float(v) for v in geometry.kji_to_lps(np.array([k, 0.0, 0.0]))]
        ds.PixelData = pixels[k].tobytes()
        path = folder / f"slice_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
