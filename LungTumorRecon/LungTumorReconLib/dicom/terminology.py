"""Standard codes (SNOMED CT) for the segments the project makes, as DICOM and as Slicer writes them.

The strings are those of Slicer's terminology tables
(``SegmentationCategoryTypeModifier-DICOM-Master.term.json`` and
``AnatomicRegionAndModifier-DICOM-Master.term.json``), so that Slicer, a DICOM SEG and a
PACS viewer show the same category, type and laterality:

- right / left lung: Anatomical Structure, Lung, modifier Right / Left;
- tumour: Morphologically Altered Structure, Nodule (longest axial diameter <= 30 mm) or Mass,
  in the anatomic region Lung with its laterality.

Slicer stores an entry in a segment's ``TerminologyEntry`` tag as
``context~category~type~type modifier~anatomic context~region~region modifier``, each code
written ``scheme^value^meaning`` (empty codes ``^^``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR

SEGMENTATION_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
TERMINOLOGY_TAG = "TerminologyEntry"  # vtkSegment's tag name
# Fleischner / Lung-RADS convention: a lung lesion up to 3 cm across is a nodule, beyond it a mass.
NODULE_MAX_DIAMETER_MM = 30.0


@dataclass(frozen=True)
class Code:
    """One coded concept: coding scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str

    def concept(self):
        """The concept as highdicom's ``CodedConcept``."""
        from highdicom.sr import CodedConcept

        return CodedConcept(value=self.value, scheme_designator=self.scheme, meaning=self.meaning)

    def same_as(self, other) -> bool:
        """Same scheme and value (the meaning is free text); ``other`` has ``value`` and ``scheme_designator``
        (pydicom / highdicom) or is a :class:`Code`."""
        scheme = getattr(other, "scheme", None) or getattr(other, "scheme_designator", None) \
            or getattr(other, "CodingSchemeDesignator", "")
        value = getattr(other, "value", None) or getattr(other, "CodeValue", "")
        return str(scheme) == self.scheme and str(value) == self.value

    def slicer(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


ANATOMICAL_STRUCTURE = Code("SCT", "123037004", "Anatomical Structure")
LUNG = Code("SCT", "39607008", "Lung")
RIGHT = Code("SCT", "24028007", "Right")
LEFT = Code("SCT", "7771000", "Left")
MORPHOLOGICALLY_ALTERED_STRUCTURE = Code("SCT", "49755003", "Morphologically Altered Structure")
MASS = Code("SCT", "4147007", "Mass")
NODULE = Code("SCT", "27925004", "Nodule")
NEOPLASM = Code("SCT", "108369006", "Neoplasm")
LATERALITY = {"right": RIGHT, "left": LEFT}


@dataclass(frozen=True)
class SegmentTerminology:
    """What a segment is, in codes: category, type (with a modifier) and anatomic region."""

    category: Code
    type: Code
    type_modifier: Code | None = None
    region: Code | None = None
    region_modifier: Code | None = None

    def slicer_entry(self) -> str:
        """The segment's ``TerminologyEntry`` tag, as Slicer serialises it."""

        def code(c: Code | None) -> str:
            return c.slicer() if c is not None else "^^"

        return "~".join([SEGMENTATION_CONTEXT, code(self.category), code(self.type), code(self.type_modifier),
                         ANATOMIC_CONTEXT, code(self.region), code(self.region_modifier)])

    @classmethod
    def from_slicer_entry(cls, entry: str) -> SegmentTerminology | None:
        """Parse a ``TerminologyEntry`` tag; None when it has no category and type."""
        parts = entry.split("~")
        if len(parts) != 7:
            return None

        def code(text: str) -> Code | None:
            fields = text.split("^")
            if len(fields) != 3 or not fields[0] or not fields[1]:
                return None
            return Code(*fields)

        category, type_ = code(parts[1]), code(parts[2])
        if category is None or type_ is None:
            return None
        return cls(category, type_, code(parts[3]), code(parts[5]), code(parts[6]))


def lung_terminology(name: str) -> SegmentTerminology:
    """``right lung`` or ``left lung``."""
    side = {RIGHT_LUNG: RIGHT, LEFT_LUNG: LEFT}[name]
    return SegmentTerminology(ANATOMICAL_STRUCTURE, LUNG, side)


def tumor_terminology(longest_diameter_mm: float | None, laterality: str | None) -> SegmentTerminology:
    """A lung nodule (<= 30 mm) or mass, in the lung on ``laterality`` (``right``, ``left`` or None).

    Without a diameter the tumour is coded as a mass (the general term for a space-occupying lesion).
    """
    nodule = longest_diameter_mm is not None and longest_diameter_mm <= NODULE_MAX_DIAMETER_MM
    return SegmentTerminology(MORPHOLOGICALLY_ALTERED_STRUCTURE, NODULE if nodule else MASS,
                              region=LUNG, region_modifier=LATERALITY.get(laterality or ""))


def terminology_for(name: str, longest_diameter_mm: float | None = None,
                    laterality: str | None = None) -> SegmentTerminology | None:
    """The codes of a segment the project makes, by its name; None for any other segment."""
    if name in (RIGHT_LUNG, LEFT_LUNG):
        return lung_terminology(name)
    if name == TUMOR:
        return tumor_terminology(longest_diameter_mm, laterality)
    return None


def segment_name_for(category, type_, modifier=None) -> str | None:
    """The project's segment name for coded concepts read from a DICOM SEG (or a Slicer entry):
    ``right lung``, ``left lung``, ``tumor``, or None when the codes are none of those.

    Any lung lesion counts as the tumour: a nodule, a mass or a neoplasm, whatever the category.
    """
    if LUNG.same_as(type_) and ANATOMICAL_STRUCTURE.same_as(category):
        if modifier is not None and RIGHT.same_as(modifier):
            return RIGHT_LUNG
        if modifier is not None and LEFT.same_as(modifier):
            return LEFT_LUNG
        return None
    if any(c.same_as(type_) for c in (MASS, NODULE, NEOPLASM)):
        return TUMOR
    return None


def tumor_laterality(tumor: np.ndarray, segments: dict[str, np.ndarray]) -> str | None:
    """``right`` or ``left``: the lung the tumour touches most (after a 3-voxel dilation), else the lung
    with the voxel nearest to the tumour's centre; None without lungs."""
    from scipy import ndimage as ndi

    lungs = {side: segments[name] for side, name in (("right", RIGHT_LUNG), ("left", LEFT_LUNG))
             if name in segments and segments[name].any()}
    if not lungs or not tumor.any():
        return None
    box = tuple(slice(max(int(lo) - 4, 0), int(hi) + 5) for lo, hi in zip(np.argwhere(tumor).min(0),
                                                                          np.argwhere(tumor).max(0)))
    near = ndi.binary_dilation(tumor[box], iterations=3)  # within the tumour's box: cheap on a whole CT
    overlap = {side: int(np.count_nonzero(near & mask[box])) for side, mask in lungs.items()}
    if max(overlap.values()) > 0:
        return max(overlap, key=overlap.get)
    centre = np.array(ndi.center_of_mass(tumor))
    distance = {side: float(np.min(((np.argwhere(mask[::4, ::4, ::4]) * 4 - centre) ** 2).sum(1)))
                for side, mask in lungs.items()}
    return min(distance, key=distance.get)


def segment_terminologies(segments: dict[str, np.ndarray], tumors: Sequence = ()) -> dict[str, SegmentTerminology]:
    """The codes of each of ``segments`` the project knows (lungs, tumour), by segment name.

    The ``tumor`` segment holds every tumour; it is coded by the largest one's longest axial
    diameter (``tumors``: measurements with ``longest_axial_diameter_mm``), as a mass without them.
    """
    out = {}
    for name, mask in segments.items():
        if name == TUMOR:
            diameters = [t.longest_axial_diameter_mm for t in tumors]
            terms = tumor_terminology(max(diameters) if diameters else None, tumor_laterality(mask, segments))
        else:
            terms = terminology_for(name)
        if terms is not None:
            out[name] = terms
    return out
