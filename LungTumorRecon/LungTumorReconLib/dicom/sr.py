"""A DICOM Structured Report, TID 1500 Measurement Report, made with highdicom.

One volumetric measurement group (TID 1411) per segment of the SEG, referencing it, with its
tracking identifier and UID:

- per tumour: volume, longest axial diameter (long axis), short axis, maximum 3D diameter
  and mean attenuation in HU, finding type Nodule or Mass, finding site Lung with laterality;
- per lung: its volume.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import generate_uid

from LungTumorReconLib import __version__
from LungTumorReconLib.dicom.seg import MANUFACTURER, MODEL_NAME
from LungTumorReconLib.dicom.terminology import Code, SegmentTerminology

SR_SERIES_DESCRIPTION = "LungTumorRecon measurements"
SR_SERIES_NUMBER = 9802
# The device observer's UID: the same in every report, derived under pydicom's UID root (a root
# of our own would need registering).
DEVICE_UID = generate_uid(entropy_srcs=["LungTumorRecon device observer"])

MILLILITER = Code("UCUM", "ml", "milliliter")
MILLIMETER = Code("UCUM", "mm", "millimeter")
HOUNSFIELD_UNIT = Code("UCUM", "[hnsf'U]", "Hounsfield unit")
VOLUME = Code("SCT", "118565006", "Volume")
LONG_AXIS = Code("SCT", "103339001", "Long axis")
SHORT_AXIS = Code("SCT", "103340004", "Short axis")
DIAMETER = Code("SCT", "81827009", "Diameter")
MAXIMUM = Code("SCT", "56851009", "Maximum")
MEAN = Code("SCT", "373098007", "Mean")
ATTENUATION_COEFFICIENT = Code("DCM", "112031", "Attenuation Coefficient")
CT_OF_CHEST = Code("SCT", "169069000", "CT of chest")

# (report.json key, concept name, derivation, unit) of each tumour measurement, in report order.
TUMOR_MEASUREMENTS = (
    ("volume_ml", VOLUME, None, MILLILITER),
    ("longest_axial_diameter_mm", LONG_AXIS, None, MILLIMETER),
    ("short_axis_mm", SHORT_AXIS, None, MILLIMETER),
    ("max_3d_diameter_mm", DIAMETER, MAXIMUM, MILLIMETER),
    ("mean_hu", ATTENUATION_COEFFICIENT, MEAN, HOUNSFIELD_UNIT),
)


@dataclass
class MeasuredSegment:
    """A segment of the SEG and what is reported about it (``values`` by report.json key)."""

    segment_number: int
    terminology: SegmentTerminology
    tracking_id: str
    tracking_uid: str
    values: dict[str, float]


def _group(seg, segment: MeasuredSegment):
    import highdicom as hd

    measurements = [
        hd.sr.Measurement(name=name.concept(), value=float(segment.values[key]), unit=unit.concept(),
                          derivation=derivation.concept() if derivation is not None else None)
        for key, name, derivation, unit in TUMOR_MEASUREMENTS if key in segment.values
    ]
    terms = segment.terminology
    site = terms.region or terms.type
    laterality = terms.region_modifier if terms.region is not None else terms.type_modifier
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=segment.tracking_uid, identifier=segment.tracking_id),
        # by its source series: ReferencedSegment.from_segmentation fails on a one-segment SEG (highdicom 0.28)
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segment.segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)),
        finding_type=terms.type.concept(),
        finding_category=terms.category.concept(),
        finding_sites=[hd.sr.FindingSite(site.concept(),
                                         laterality=laterality.concept() if laterality is not None else None)],
        measurements=measurements,
    )


def build_sr(seg, source_datasets: list, segments: list[MeasuredSegment], series_uid: str, sop_uid: str):
    """The TID 1500 report (``highdicom.sr.Comprehensive3DSR``) on ``seg`` and its CT.

    Parameters
    ----------
    seg : highdicom.seg.Segmentation
        The SEG whose segments the groups reference.
    source_datasets : list of pydicom.Dataset
        The CT's slices (evidence).
    segments : list of MeasuredSegment
        One measurement group each, in this order.
    series_uid, sop_uid : str
        UIDs of the new series and instance.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=MODEL_NAME))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CT_OF_CHEST.concept(),
        imaging_measurements=[_group(seg, s) for s in segments],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*source_datasets, seg],
        content=report[0],
        series_instance_uid=series_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
        software_versions=__version__,
    )
