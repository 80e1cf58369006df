"""A DICOM Segmentation (SEG) of the lungs and each tumour, made with highdicom.

BINARY segments, one per lung and one per tumour (they may overlap), each with its SNOMED CT
codes, a tracking identifier and UID, and the algorithm that made it. Frames without any
segment voxel are left out, as the standard allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from LungTumorReconLib import __version__
from LungTumorReconLib.dicom.source import SourceSeries
from LungTumorReconLib.dicom.terminology import SegmentTerminology

MANUFACTURER = "LungTumorRecon"
MODEL_NAME = "LungTumorRecon (not for clinical use)"
SEG_SERIES_DESCRIPTION = "LungTumorRecon segmentation"
SEG_SERIES_NUMBER = 9801


@dataclass
class SegSegment:
    """One segment of the SEG: label, (k, j, i) mask on the CT grid, codes and tracking."""

    label: str
    mask: np.ndarray
    terminology: SegmentTerminology
    method: str  # the method that made it, e.g. "gk" or "snake"
    tracking_id: str
    tracking_uid: str
    seeded: bool = False  # from a user's click: semi-automatic


def _description(number: int, segment: SegSegment):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    terms = segment.terminology
    algorithm = hd.AlgorithmIdentificationSequence(
        name=MANUFACTURER, version=__version__, family=codes.cid7162.ArtificialIntelligence,
        parameters={"method": segment.method})
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.label,
        segmented_property_category=terms.category.concept(),
        segmented_property_type=terms.type.concept(),
        algorithm_type="SEMIAUTOMATIC" if segment.seeded else "AUTOMATIC",
        algorithm_identification=algorithm,
        tracking_uid=segment.tracking_uid,
        tracking_id=segment.tracking_id,
        anatomic_regions=[terms.region.concept()] if terms.region is not None else None,
    )
    if terms.type_modifier is not None:  # highdicom takes no modifier: add it to the type's code item
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            terms.type_modifier.concept()]
    if terms.region is not None and terms.region_modifier is not None:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [terms.region_modifier.concept()]
    return description


def build_seg(series: SourceSeries, segments: list[SegSegment], series_uid: str, sop_uid: str):
    """The SEG dataset (``highdicom.seg.Segmentation``) of ``segments`` on ``series``.

    Parameters
    ----------
    series : SourceSeries
        The CT's slices, sorted along the normal, with their k on the CT's grid.
    segments : list of SegSegment
        In segment-number order (1, 2, ...); masks on the CT's grid.
    series_uid, sop_uid : str
        UIDs of the new series and instance (kept by the caller so that a resend is the same object).

    Returns
    -------
    highdicom.seg.Segmentation
    """
    import highdicom as hd

    rows, columns = int(series.datasets[0].Rows), int(series.datasets[0].Columns)
    pixels = np.zeros((len(series.datasets), rows, columns, len(segments)), dtype=bool)
    for n, segment in enumerate(segments):
        pixels[..., n] = series.frames(segment.mask)
    return hd.seg.Segmentation(
        source_images=series.datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(n, s) for n, s in enumerate(segments, start=1)],
        series_instance_uid=series_uid,
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        series_description=SEG_SERIES_DESCRIPTION,
        content_label="LUNGTUMOR",
        content_description="Lungs and lung tumours. Not for clinical use.",
        content_creator_name="LungTumorRecon^",
        omit_empty_frames=True,
    )
