"""Earlier results as DICOM input: the segments of a DICOM SEG or the ROIs of an RTSTRUCT, on the CT's grid.

Both must refer to the CT they are read onto: an object that references another series than
the CT's, or that lies outside it, is refused with :class:`~LungTumorReconLib.errors.InputError`.

- SEG (highdicom): each segment is named by its codes
  (:func:`~LungTumorReconLib.dicom.terminology.segment_name_for`), else by its label; its
  frames become a volume in patient space, resampled onto the CT's grid by nearest neighbour.
- RTSTRUCT (pydicom): the ``CLOSED_PLANAR`` contours of an ROI are filled on the CT's slices
  (even-odd rule, so a contour inside another is a hole); each CT slice takes the nearest
  plane of contours within half the contours' spacing.

Not for clinical use.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# Segment labels and ROI names (lower case, "_" and "-" as spaces), TG-263 names among them.
_LUNG_LABELS = {RIGHT_LUNG: {"right lung", "lung right", "lung r", "r lung", "rt lung", "lung rt"},
                LEFT_LUNG: {"left lung", "lung left", "lung l", "l lung", "lt lung", "lung lt"}}
_TUMOR_WORDS = ("tumor", "tumour", "nodule", "mass", "lesion")
# Heights (in slices) closer than this are one plane of contours.
_PLANE_TOLERANCE = 1e-3


def is_dicom_object(path: str | Path) -> str | None:
    """What kind of earlier result a file is.

    Parameters
    ----------
    path : str or Path
        Any file (a folder, an NRRD or NIfTI image, a DICOM object).

    Returns
    -------
    str or None
        ``"SEG"`` or ``"RTSTRUCT"`` for a DICOM Segmentation or RT Structure Set; None for
        anything else, including a file that is not DICOM.
    """
    import pydicom

    path = Path(path)
    if not path.is_file():
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - not DICOM (InvalidDicomError), or unreadable: not ours to judge
        return None
    sop_class = str(getattr(ds, "SOPClassUID", "") or getattr(getattr(ds, "file_meta", None),
                                                              "MediaStorageSOPClassUID", ""))
    modality = str(getattr(ds, "Modality", "")).strip().upper()
    if sop_class == SEG_STORAGE or modality == "SEG":
        return "SEG"
    if sop_class == RTSTRUCT_STORAGE or modality == "RTSTRUCT":
        return "RTSTRUCT"
    return None


def name_for_label(label: str) -> str | None:
    """The project's segment name for a segment label or ROI name, or None.

    ``right lung`` / ``left lung`` (also ``Lung_R``, ``Lung_L`` ...), and ``tumor`` for a label
    starting with tumor, tumour, nodule, mass, lesion or GTV (``GTV-1``, ``nodule 2``).
    """
    words = str(label).lower().replace("_", " ").replace("-", " ").split()
    key = " ".join(words)
    for name, labels in _LUNG_LABELS.items():
        if key in labels:
            return name
    if words and (words[0] in _TUMOR_WORDS or words[0].startswith("gtv")):
        return TUMOR
    return None


def read_dicom_segments(path: str | Path, ct: CTVolume, roi: str | None = None,
                        tumor_only: bool = False) -> dict[str, np.ndarray]:
    """The lungs and tumour of a DICOM SEG or RTSTRUCT as masks on the CT's grid.

    Parameters
    ----------
    path : str or Path
        The SEG or RTSTRUCT file.
    ct : CTVolume
        The CT: its grid, and its series (``ct.series_uid``, when read from DICOM), which the
        object must reference.
    roi : str, optional
        The tumour's segment label (SEG) or ROI name (RTSTRUCT), case-insensitive; it takes the
        place of the segments named a tumour by their codes or labels.
    tumor_only : bool
        For a tumour mask: only the tumour is read. An RTSTRUCT with a single ROI, or a SEG with
        a single segment of no known meaning, is then the tumour without ``roi``.

    Returns
    -------
    dict of str to ndarray
        ``"right lung"``, ``"left lung"`` and ``"tumor"`` (those found) to (k, j, i) bool masks
        on ``ct.geometry``; segments of the same name are joined.

    Raises
    ------
    InputError
        Not a SEG or RTSTRUCT; another series than the CT's; no segment or ROI to take (the
        message lists those it has); lying outside the CT.
    """
    path = Path(path)
    kind = is_dicom_object(path)
    if kind == "SEG":
        return _read_seg(path, ct, roi, tumor_only)
    if kind == "RTSTRUCT":
        return _read_rtstruct(path, ct, roi, tumor_only)
    raise InputError("not a DICOM SEG or RTSTRUCT", path)


def _check_series(referenced: set[str], ct: CTVolume, path: Path) -> None:
    """Refuse an object that references series, none of them the CT's (when the CT came from DICOM)."""
    if ct.series_uid and referenced and ct.series_uid not in referenced:
        raise InputError(f"references series {', '.join(sorted(referenced))}, not the CT's series {ct.series_uid}",
                         path)


def _choose(names: dict[str, str | None], roi: str | None, tumor_only: bool, what: str,
            path: Path) -> dict[str, list[str]]:
    """Project name -> the segment (or ROI) keys taken, from key -> name by codes or label.

    ``names`` maps each key (a segment number or ROI name, as text) to the name its codes or
    label give; ``what`` is "segment" or "ROI" for the messages.
    """
    labels = ", ".join(repr(k) for k in names)
    chosen: dict[str, list[str]] = defaultdict(list)
    if roi is not None:
        picked = [k for k in names if k.strip().lower() == roi.strip().lower()]
        if not picked:
            raise InputError(f"has no {what} {roi!r} (has {what}s {labels})", path, option="roi")
        chosen[TUMOR] = picked
    for key, name in names.items():
        if roi is not None and key in chosen[TUMOR]:
            continue
        if name is not None and (name != TUMOR or roi is None) and (name == TUMOR or not tumor_only):
            chosen[name].append(key)
    if tumor_only and not chosen:
        unnamed = [k for k, name in names.items() if name is None]
        if len(names) == 1 and unnamed:  # a lone segment of no known meaning is the mask asked for
            chosen[TUMOR] = unnamed
        else:
            raise InputError(f"has no tumour {what} (has {what}s {labels}); choose one", path, option="roi")
    if not chosen:
        raise InputError(f"has no {what} for a lung or a tumour (has {what}s {labels})", path)
    return dict(chosen)


def _reference_image(geometry: VolumeGeometry) -> sitk.Image:
    reference = sitk.Image(list(geometry.size), sitk.sitkUInt8)
    geometry.apply_to_sitk(reference)
    return reference


# --- SEG ----------------------------------------------------------------------------------------

def _read_seg(path: Path, ct: CTVolume, roi: str | None, tumor_only: bool) -> dict[str, np.ndarray]:
    import highdicom as hd

    from LungTumorReconLib.dicom.terminology import segment_name_for

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - whatever highdicom refuses, one line naming the file
        raise InputError(f"not a readable DICOM SEG ({_first_line(exc)})", path) from None
    referenced = {str(item.SeriesInstanceUID) for item in getattr(seg, "ReferencedSeriesSequence", [])}
    _check_series(referenced, ct, path)
    names: dict[str, str | None] = {}  # segments of the same label are one
    numbers: dict[str, list[int]] = defaultdict(list)
    for item in seg.SegmentSequence:
        label = str(getattr(item, "SegmentLabel", "") or f"segment {item.SegmentNumber}")
        type_ = item.SegmentedPropertyTypeCodeSequence[0]
        modifier = (getattr(type_, "SegmentedPropertyTypeModifierCodeSequence", None) or [None])[0]
        name = segment_name_for(item.SegmentedPropertyCategoryCodeSequence[0], type_, modifier)
        names[label] = names.get(label) or (name if name is not None else name_for_label(label))
        numbers[label].append(int(item.SegmentNumber))
    chosen = _choose(names, roi, tumor_only, "segment", path)
    reference = _reference_image(ct.geometry)
    thickness = _seg_slice_thickness(seg) or ct.geometry.spacing[2]
    out: dict[str, np.ndarray] = {}
    for name, labels in chosen.items():
        try:
            volume = seg.get_volume(segment_numbers=[n for label in labels for n in numbers[label]],
                                    combine_segments=False, skip_overlap_checks=True)
        except Exception as exc:  # noqa: BLE001 - frames that make no regular volume
            raise InputError(f"its frames do not form a volume ({_first_line(exc)})", path) from None
        image, has_voxels = _seg_image(volume, thickness)
        resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        out[name] = sitk.GetArrayFromImage(resampled).astype(bool)
        if has_voxels and not out[name].any():
            raise InputError(f"lies outside the CT (segment {', '.join(labels)})", path)
    return out


def _seg_slice_thickness(seg) -> float | None:
    try:
        return float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _seg_image(volume, thickness: float) -> tuple[sitk.Image, bool]:
    """The union of a highdicom ``Volume``'s segments (its channels) as a sitk image in LPS.

    highdicom spaces the slices of frames it cannot place regularly by their greatest common
    gap; empty slices are put in between so that no frame reaches further than its thickness.
    """
    array = volume.array > 0.5  # BINARY as 0/1, FRACTIONAL rescaled to 0-1
    if array.ndim == 4:
        array = array.any(axis=-1)
    affine = np.array(volume.affine, dtype=float)
    step = float(np.linalg.norm(affine[:3, 0]))
    factor = int(np.ceil(step / thickness - 1e-3)) if array.shape[0] > 1 and thickness > 0 else 1
    if factor > 1:
        spread = np.zeros(((array.shape[0] - 1) * factor + 1, *array.shape[1:]), dtype=bool)
        spread[::factor] = array
        array = spread
        affine[:3, 0] /= factor
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (affine[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return image, bool(array.any())


# --- RTSTRUCT ------------------------------------------------------------------------------------

def _read_rtstruct(path: Path, ct: CTVolume, roi: str | None, tumor_only: bool) -> dict[str, np.ndarray]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        referenced = {str(series.SeriesInstanceUID)
                      for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", [])
                      for study in getattr(frame, "RTReferencedStudySequence", [])
                      for series in getattr(study, "RTReferencedSeriesSequence", [])}
        roi_names = {int(item.ROINumber): str(getattr(item, "ROIName", "") or f"ROI {item.ROINumber}")
                     for item in ds.StructureSetROISequence}
        contours: dict[str, list[np.ndarray]] = defaultdict(list)
        for item in getattr(ds, "ROIContourSequence", []):
            name = roi_names.get(int(item.ReferencedROINumber))
            for contour in getattr(item, "ContourSequence", []):
                if name is not None and str(getattr(contour, "ContourGeometricType", "")) == "CLOSED_PLANAR":
                    points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
                    if len(points) >= 3 and np.all(np.isfinite(points)):
                        contours[name].append(points)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged structure set, one line naming the file
        raise InputError(f"not a readable RTSTRUCT ({_first_line(exc)})", path) from None
    _check_series(referenced, ct, path)
    names = {name: name_for_label(name) for name in roi_names.values()}
    if tumor_only and roi is None and len(names) == 1:
        chosen = {TUMOR: list(names)}  # the single ROI is the tumour mask asked for
    elif tumor_only and roi is None:
        raise InputError(f"has ROIs {', '.join(repr(n) for n in names)}; choose one", path, option="roi")
    else:
        chosen = _choose(names, roi, tumor_only, "ROI", path)
    out: dict[str, np.ndarray] = {}
    for name, rois in chosen.items():
        mask = np.zeros(ct.geometry.shape_kji, dtype=bool)
        for roi_name in rois:
            mask |= rasterise_contours(contours.get(roi_name, []), ct.geometry)
        if not any(contours.get(roi_name) for roi_name in rois):
            raise InputError(f"ROI {', '.join(map(repr, rois))} has no closed planar contour", path)
        if not mask.any():
            raise InputError(f"lies outside the CT (ROI {', '.join(map(repr, rois))})", path)
        out[name] = mask
    return out


def rasterise_contours(contours: list[np.ndarray], geometry: VolumeGeometry) -> np.ndarray:
    """Fill closed planar contours (each an (n, 3) array of LPS points) on a grid's slices.

    Contours at the same height form one plane, filled by the even-odd rule (a contour inside
    another is a hole). Each slice k takes the plane nearest to it within half the planes'
    spacing (half a slice when there is one plane or the planes are closer than the slices);
    planes beyond the grid are left out, and so are the parts of a contour outside it.

    Parameters
    ----------
    contours : list of ndarray
        Closed polygons, LPS millimetres.
    geometry : VolumeGeometry
        The grid (the CT's).

    Returns
    -------
    ndarray
        (k, j, i) bool mask.
    """
    from skimage.draw import polygon

    shape = geometry.shape_kji
    mask = np.zeros(shape, dtype=bool)
    planes: dict[float, np.ndarray] = {}
    for points in contours:
        kji = geometry.lps_to_kji(points)
        height = float(np.mean(kji[:, 0]))
        key = next((h for h in planes if abs(h - height) < _PLANE_TOLERANCE), height)
        plane = planes.setdefault(key, np.zeros(shape[1:], dtype=bool))
        rows, cols = polygon(kji[:, 1], kji[:, 2], shape=shape[1:])
        plane[rows, cols] ^= True  # even-odd: a contour inside another cuts a hole
    if not planes:
        return mask
    heights = np.array(sorted(planes))
    reach = max(0.5, float(np.median(np.diff(heights))) / 2.0) if len(heights) > 1 else 0.5
    for k in range(shape[0]):
        nearest = heights[int(np.argmin(np.abs(heights - k)))]
        if abs(nearest - k) <= reach + _PLANE_TOLERANCE:
            mask[k] = planes[float(nearest)]
    return mask


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:120]
