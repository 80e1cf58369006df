"""Reading a chest CT into HU with its geometry: DICOM folders and NRRD/NIfTI/MetaImage files.

SimpleITK (GDCM) decodes the pixels; pydicom reads the headers, which are needed to pick
the series and to check slice geometry before any pixel is decoded.
"""

from __future__ import annotations

import os
import warnings as _warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
# Relative deviation of slice gaps above which a series is resampled to uniform spacing.
SLICE_GAP_TOLERANCE = 0.01
# Below this a volume does not look like CT in HU: a chest CT always holds air (about -1000).
CT_AIR_HU = -500.0


@dataclass
class CTVolume:
    """A CT in HU: ``array`` is indexed (k, j, i); ``geometry`` maps it to LPS."""

    array: np.ndarray
    geometry: VolumeGeometry
    path: str = ""
    series_uid: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_sitk(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.array)
        self.geometry.apply_to_sitk(image)
        return image


def is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in IMAGE_SUFFIXES)


def read_ct(path: str | Path) -> CTVolume:
    """Read a CT from a DICOM folder (searched recursively) or an image file.

    Raises InputError with a one-line reason for anything that is not a usable 3D CT.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise InputError("cannot read it (permission denied)", path)
    if path.is_dir():
        volume = _read_dicom_folder(path)
    else:
        volume = _read_image_file(path)
    _check_looks_like_ct(volume)
    return volume


def _read_image_file(path: Path) -> CTVolume:
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError:
        if _is_dicom_file(path):
            return _read_dicom_files(path, [path])
        raise InputError("not a readable image (expected a DICOM folder, NRRD, NIfTI or MetaImage)", path) from None
    dim = reader.GetDimension()
    size = reader.GetSize()
    if reader.GetNumberOfComponents() != 1:
        raise InputError(f"image has {reader.GetNumberOfComponents()} components per voxel; a CT has one", path)
    if dim == 2 or (dim == 3 and min(size) <= 1):
        raise InputError(f"image is 2D (size {'x'.join(map(str, size))}); a 3D CT is needed", path)
    if dim != 3:
        raise InputError(f"image is {dim}D; a 3D CT is needed", path)
    if reader.GetMetaDataKeys() and reader.HasMetaDataKey("0008|0060"):
        modality = reader.GetMetaData("0008|0060").strip()
        if modality and modality != "CT":
            raise InputError(f"modality is {modality}, not CT", path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read image data ({_first_line(exc)})", path) from None
    array = _as_hu_dtype(sitk.GetArrayFromImage(image))
    return CTVolume(array=array, geometry=VolumeGeometry.from_sitk(image), path=str(path))


def _as_hu_dtype(array: np.ndarray) -> np.ndarray:
    """int16 when every value is a whole number in range (the usual CT), else float32."""
    if array.size and array.min() >= -32768 and array.max() <= 32767:
        if np.issubdtype(array.dtype, np.integer) or np.array_equal(array, np.rint(array)):
            return array.astype(np.int16, copy=False)
    return array.astype(np.float32, copy=False)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _read_dicom_folder(folder: Path) -> CTVolume:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    if not files:
        raise InputError("folder is empty", folder)
    unreadable = [p for p in files if not os.access(p, os.R_OK)]
    if unreadable:  # skipping them would drop slices without a word
        raise InputError(f"{len(unreadable)} of its files cannot be read (permission denied), e.g. "
                         f"{unreadable[0].name}", folder)
    return _read_dicom_files(folder, files)


@dataclass(frozen=True)
class _SliceHeader:
    """What the series checks need from one DICOM image slice, parsed and validated once."""

    path: Path
    modality: str
    sop_class: str
    series_uid: str
    orientation: tuple[float, ...]  # 6 direction cosines: row direction, then column direction
    position: tuple[float, float, float]
    size: tuple[int, int]  # (rows, columns)
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing)


def _slice_header(path: Path, ds, source: Path) -> _SliceHeader | None:
    """The slice's geometry, or None for a DICOM object that is not an image slice (RTSTRUCT, SEG, SR).

    pydicom decodes values lazily, so a damaged value (a bad VR, a non-number in a DS) only
    fails here; any such failure refuses the series with the file named.
    """
    try:
        if "ImagePositionPatient" not in ds or "Rows" not in ds:
            meta = getattr(ds, "file_meta", None)
            sop_class = str(getattr(ds, "SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", ""))
            if sop_class in (CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE):  # a CT slice cut short
                raise InputError(f"DICOM file {path.name} is damaged (a CT slice without its geometry)", source)
            return None
        header = _SliceHeader(
            path=path,
            modality=str(getattr(ds, "Modality", "")).strip(),
            sop_class=str(getattr(ds, "SOPClassUID", "")),
            series_uid=str(getattr(ds, "SeriesInstanceUID", "")),
            orientation=tuple(float(v) for v in ds.ImageOrientationPatient),
            position=tuple(float(v) for v in ds.ImagePositionPatient),
            size=(int(ds.Rows), int(ds.Columns)),
            pixel_spacing=tuple(float(v) for v in ds.PixelSpacing),
        )
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the damage, one line naming the file
        raise InputError(f"DICOM file {path.name} has a damaged header ({_first_line(exc)[:80]})", source) from None
    numbers = header.orientation + header.position + header.pixel_spacing
    if (len(header.orientation) != 6 or len(header.position) != 3 or len(header.pixel_spacing) != 2
            or not np.all(np.isfinite(numbers)) or min(header.pixel_spacing) <= 0 or min(header.size) < 1):
        raise InputError(f"DICOM file {path.name} has invalid geometry (orientation, position, "
                         "pixel spacing or size)", source)
    return header


def _read_dicom_files(source: Path, files: list[Path]) -> CTVolume:
    uid, slices, warnings = _largest_ct_series(source, files)
    _check_slices_agree(slices, source)
    orientations = np.array([h.orientation for h in slices])
    row_dir = orientations[0][:3]  # direction of increasing column index (i)
    col_dir = orientations[0][3:]  # direction of increasing row index (j)
    normal = np.cross(row_dir, col_dir)
    positions = np.array([h.position for h in slices])
    heights = positions @ normal
    order = np.argsort(heights)
    slices = [slices[i] for i in order]
    heights = heights[order]
    positions = positions[order]
    gaps = np.diff(heights)
    if np.any(gaps < 1e-3):
        raise InputError("CT series has two slices at the same position", source)

    pixel_spacing = list(slices[0].pixel_spacing)  # (row spacing, column spacing)
    # Gantry tilt: each slice's position is off the normal through the first one by a shift
    # that grows with height. Slicer regularises such series; so do we, shifting each slice
    # in-plane onto an orthogonal grid (linear interpolation), with a warning.
    offsets = positions - positions[0] - np.outer(heights - heights[0], normal)
    shifts = np.column_stack([offsets @ col_dir / pixel_spacing[0], offsets @ row_dir / pixel_spacing[1]])
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(offsets[-1]), heights[-1] - heights[0])))
    if np.abs(shifts).max() > 0.01:
        warnings.append(f"gantry tilt of {tilt:.1f} degrees: slices shifted in-plane onto an orthogonal grid")

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(h.path) for h in slices])
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            sitk.ProcessObject_SetGlobalWarningDisplay(False)
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot decode DICOM pixel data ({_first_line(exc)})", source) from None
    finally:
        sitk.ProcessObject_SetGlobalWarningDisplay(True)
    array = _as_hu_dtype(sitk.GetArrayFromImage(image))  # GDCM has applied RescaleSlope/Intercept
    if np.abs(shifts).max() > 0.01:
        array = _shift_slices(array, shifts)
    spacing_k = float(np.median(gaps))
    direction = np.column_stack([row_dir, col_dir, normal])
    if np.abs(gaps - spacing_k).max() > SLICE_GAP_TOLERANCE * spacing_k:
        array, n_new = _resample_slices_uniform(array, heights - heights[0], spacing_k)
        warnings.append(
            f"irregular slice spacing (gaps {gaps.min():.3g}–{gaps.max():.3g} mm, a missing slice?); "
            f"resampled {len(slices)} slices to {n_new} at {spacing_k:.3g} mm"
        )
    geometry = VolumeGeometry(
        size=(array.shape[2], array.shape[1], array.shape[0]),
        spacing=(pixel_spacing[1], pixel_spacing[0], spacing_k),
        origin=tuple(float(v) for v in positions[0]),
        direction=tuple(float(v) for v in direction.ravel()),
    )
    return CTVolume(array=array, geometry=geometry, path=str(source), series_uid=uid, warnings=warnings)


def _largest_ct_series(source: Path, files: list[Path]) -> tuple[str, list[_SliceHeader], list[str]]:
    """The CT series with the most slices among ``files`` (a warning when there are several)."""
    import pydicom

    series: dict[str, list[_SliceHeader]] = defaultdict(list)
    other_modalities: set[str] = set()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - anything pydicom cannot parse
            if _is_dicom_file(f):  # a DICOM slice that is damaged: refuse rather than drop a slice
                raise InputError(f"DICOM file {f.name} is damaged (its header cannot be parsed)", source) from None
            continue  # not DICOM: skip, as Slicer's DICOM browser does
        header = _slice_header(f, ds, source)
        if header is None:
            continue
        if header.modality != "CT" and header.sop_class not in (CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE):
            other_modalities.add(header.modality or "unknown")
            continue
        series[header.series_uid].append(header)
    if not series:
        if other_modalities:
            raise InputError(f"no CT image series (found modality {', '.join(sorted(other_modalities))})", source)
        raise InputError("no readable DICOM image series", source)

    warnings: list[str] = []
    uid, slices = max(series.items(), key=lambda kv: len(kv[1]))
    if len(series) > 1:
        counts = ", ".join(f"{u} ({len(s)} slices)" for u, s in series.items())
        warnings.append(f"{len(series)} CT series found: {counts}; using {uid}, which has the most slices")
    if len(slices) < 2:
        raise InputError("CT series has a single slice; a 3D CT is needed", source)
    return uid, slices, warnings


def _check_slices_agree(slices: list[_SliceHeader], source: Path) -> None:
    orientations = np.array([h.orientation for h in slices])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise InputError("slices of the CT series disagree in orientation", source)
    sizes = {h.size for h in slices}
    if len(sizes) > 1:
        raise InputError(f"slices of the CT series disagree in size: {sorted(sizes)}", source)
    if len({tuple(np.round(h.pixel_spacing, 4)) for h in slices}) > 1:
        raise InputError("slices of the CT series disagree in pixel spacing", source)


def _shift_slices(array: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Slice k moved by ``shifts[k]`` (rows, columns) pixels; air (-1024 HU) comes in at the edges."""
    from scipy import ndimage as ndi

    out = np.empty(array.shape, dtype=np.float32)
    for k, (dr, dc) in enumerate(shifts):
        out[k] = ndi.shift(array[k].astype(np.float32), (dr, dc), order=1, mode="constant", cval=-1024.0)
    return np.rint(out).astype(array.dtype) if np.issubdtype(array.dtype, np.integer) else out


def _resample_slices_uniform(array: np.ndarray, heights: np.ndarray, spacing: float) -> tuple[np.ndarray, int]:
    """Linear interpolation along k from slices at ``heights`` (ascending, from 0) to a uniform grid."""
    n_new = int(np.floor(heights[-1] / spacing + 1e-6)) + 1
    targets = np.arange(n_new) * spacing
    upper = np.clip(np.searchsorted(heights, targets, side="right"), 1, len(heights) - 1)
    lower = upper - 1
    w = ((targets - heights[lower]) / (heights[upper] - heights[lower]))[:, None, None]
    w = np.clip(w, 0.0, 1.0)
    out = (1.0 - w) * array[lower].astype(np.float32) + w * array[upper].astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        out = np.rint(out).astype(array.dtype)
    return out, n_new


def _check_looks_like_ct(volume: CTVolume) -> None:
    if volume.array.dtype.kind == "f":
        bad = int(volume.array.size - np.count_nonzero(np.isfinite(volume.array)))
        if bad:
            raise InputError(f"{bad} voxels are NaN or infinite; a CT's voxels are numbers in HU", volume.path)
    _check_axial_grid(volume)
    if float(volume.array.min()) > CT_AIR_HU:
        raise InputError(
            f"does not look like a CT in Hounsfield units (lowest value {float(volume.array.min()):.0f}, "
            f"no air below {CT_AIR_HU:.0f} HU)",
            volume.path,
        )


def _check_axial_grid(volume: CTVolume) -> None:
    """The methods work slice by slice along k: the grid must be orthogonal and its k axis
    within 45 degrees of the head-foot axis. Oblique axial grids are kept as they are."""
    d = volume.geometry.direction_matrix
    if np.abs(d.T @ d - np.eye(3)).max() > 1e-3:
        raise InputError("the image axes are not orthogonal (a sheared grid); resample it first", volume.path)
    angle = float(np.degrees(np.arccos(min(1.0, abs(d[2, 2])))))
    if angle > 45.0:
        raise InputError(f"the slices are not axial (the slice axis is {angle:.0f} degrees from head-foot); "
                         "reformat the CT to axial slices first", volume.path)


def read_label_on_grid(path: str | Path, geometry: VolumeGeometry, threshold: float = 0.0) -> np.ndarray:
    """Read a mask image (any readable format, same patient space) onto the CT grid.

    Voxels whose value is > ``threshold`` are foreground. Resampled with nearest neighbour,
    so a mask on another grid lands where it lies in patient space.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError("not a readable image", path) from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("mask must be a 3D single-component image", path)
    binary = sitk.Cast(image > threshold, sitk.sitkUInt8)
    reference = sitk.Image(list(geometry.size), sitk.sitkUInt8)
    geometry.apply_to_sitk(reference)
    resampled = sitk.Resample(binary, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(resampled).astype(bool)
    if binary_has_voxels(image, threshold) and not mask.any():
        raise InputError("mask does not overlap the CT", path)
    return mask


def binary_has_voxels(image: sitk.Image, threshold: float) -> bool:
    return bool(sitk.GetArrayViewFromImage(image).max() > threshold)


def write_image(array: np.ndarray, geometry: VolumeGeometry, path: str | Path) -> None:
    """Write a (k, j, i) array with the given geometry (compressed)."""
    image = sitk.GetImageFromArray(array)
    geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path), useCompression=True)
