"""A site's corrected cases for fine-tuning: a folder of pairs, read and written.

A case ``CASE`` is a CT, ``CASE.nrrd`` (any image file :func:`~LungTumorReconLib.io.ct.read_ct`
reads) or a DICOM folder ``CASE/``, beside ``CASE.seg.nrrd``: a Slicer segmentation on the
CT's grid with a segment named ``tumor`` (the corrected tumour). Hidden files (``.name``, as
a file being written is) and other files are ignored. Not for clinical use.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import CTVolume, is_image_file, read_ct, write_image
from LungTumorReconLib.io.seeds import TUMOR
from LungTumorReconLib.io.segmentation import read_segments, write_segments

SEGMENTATION_SUFFIX = ".seg.nrrd"
CT_SUFFIX = ".nrrd"
GRID_TOLERANCE_MM = 1e-3  # a segmentation saved by Slicer carries its CT's grid to float precision
TUMOR_COLOR = (0.90, 0.30, 0.25)  # as the project shows the tumour (mrml.roles.SEGMENT_COLORS)


@dataclass
class CasePair:
    """One case's files: its CT (an image file or a DICOM folder) and its segmentation."""

    name: str
    ct_path: Path
    segmentation_path: Path


@dataclass
class TumorCase:
    """A case read for fine-tuning, cropped to its tumours and a margin (the rest is not trained on)."""

    name: str
    hu: np.ndarray  # (k, j, i)
    mask: np.ndarray  # (k, j, i) bool, the corrected tumour
    geometry: VolumeGeometry  # of the crop


def _case_name(path: Path) -> str | None:
    """The case a file or folder belongs to, or None for what is not part of a case."""
    name = path.name
    if name.startswith("."):
        return None
    if path.is_dir():
        return name
    if name.lower().endswith(SEGMENTATION_SUFFIX):
        return name[: -len(SEGMENTATION_SUFFIX)]
    if is_image_file(path):
        return next(name[: -len(s)] for s in (".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd")
                    if name.lower().endswith(s))
    return None


def find_case_pairs(folder: str | Path) -> list[CasePair]:
    """The cases of ``folder``, by name.

    Parameters
    ----------
    folder : str or Path
        A folder of ``CASE.nrrd`` (or ``CASE/``, DICOM) and ``CASE.seg.nrrd`` pairs.

    Returns
    -------
    list of CasePair
        Sorted by name.

    Raises
    ------
    InputError
        If the folder does not exist, holds no case, or holds a CT without its segmentation
        or a segmentation without its CT (every one named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder of cases", folder)
    cts: dict[str, list[Path]] = {}
    segmentations: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = _case_name(path)
        if name is None:
            continue
        if path.is_file() and path.name.lower().endswith(SEGMENTATION_SUFFIX):
            segmentations[name] = path
        else:
            cts.setdefault(name, []).append(path)
    twice = sorted(name for name, paths in cts.items() if len(paths) > 1)
    if twice:
        raise InputError(f"more than one CT for case(s) {', '.join(twice)}; keep one per case", folder)
    unpaired = [f"{cts[n][0].name} (no {n}{SEGMENTATION_SUFFIX})" for n in sorted(set(cts) - set(segmentations))]
    unpaired += [f"{segmentations[n].name} (no CT {n}{CT_SUFFIX} or DICOM folder {n}/)"
                 for n in sorted(set(segmentations) - set(cts))]
    if unpaired:
        raise InputError(f"unpaired files: {'; '.join(unpaired)}", folder)
    if not cts:
        raise InputError(f"no cases: put pairs CASE{CT_SUFFIX} (or a DICOM folder CASE/) and CASE{SEGMENTATION_SUFFIX} "
                         f"with a '{TUMOR}' segment in it", folder)
    return [CasePair(name, cts[name][0], segmentations[name]) for name in sorted(cts)]


def same_grid(a: VolumeGeometry, b: VolumeGeometry) -> bool:
    """Whether two grids are the same voxels in patient space (sizes equal, voxel centres
    within :data:`GRID_TOLERANCE_MM`)."""
    if tuple(a.size) != tuple(b.size):
        return False
    corners = np.array([[0, 0, 0], [n - 1 for n in a.size]], dtype=float)
    return bool(np.allclose(a.ijk_to_lps(corners), b.ijk_to_lps(corners), atol=GRID_TOLERANCE_MM)
                and np.allclose(a.ijk_to_lps_matrix(), b.ijk_to_lps_matrix(), atol=GRID_TOLERANCE_MM))


def read_pair(pair: CasePair) -> tuple[CTVolume, np.ndarray]:
    """A case's CT and its tumour mask on the CT's grid.

    Parameters
    ----------
    pair : CasePair
        The case's files.

    Returns
    -------
    tuple of (CTVolume, ndarray)
        The CT, and the ``tumor`` segment as a (k, j, i) bool mask.

    Raises
    ------
    InputError
        Naming the file: an unreadable CT or segmentation, a segmentation on another grid than
        its CT's, no ``tumor`` segment, or an empty one.
    """
    ct = read_ct(pair.ct_path)
    segments, seg_geometry = read_segments(pair.segmentation_path)
    if not same_grid(seg_geometry, ct.geometry):
        seg_size, ct_size = ("x".join(map(str, g.size)) for g in (seg_geometry, ct.geometry))
        raise InputError(
            f"not on its CT's grid (segmentation {seg_size} voxels of {_mm(seg_geometry.spacing)} mm, CT {ct_size} "
            f"of {_mm(ct.geometry.spacing)} mm, or another origin or orientation); save the segmentation with its "
            "CT as the reference geometry", pair.segmentation_path)
    if TUMOR not in segments:
        raise InputError(f"no segment named '{TUMOR}' (has: {', '.join(segments) or 'none'})", pair.segmentation_path)
    mask = segments[TUMOR]
    if not mask.any():
        raise InputError(f"the '{TUMOR}' segment is empty", pair.segmentation_path)
    return ct, mask


def _mm(spacing) -> str:
    return "x".join(f"{s:.3g}" for s in spacing)


def crop_to_tumor(name: str, ct: CTVolume, mask: np.ndarray, margin_mm: tuple[float, float, float]) -> TumorCase:
    """The box around every tumour voxel plus ``margin_mm`` (k, j, i), clipped to the CT."""
    spacing_kji = np.asarray(ct.geometry.spacing[::-1], dtype=float)
    points = np.argwhere(mask)
    margin = np.ceil(np.asarray(margin_mm) / spacing_kji).astype(int)
    lo = np.maximum(points.min(axis=0) - margin, 0)
    hi = np.minimum(points.max(axis=0) + margin + 1, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    g = ct.geometry
    geometry = VolumeGeometry(size=tuple(int(b - a) for a, b in zip(lo[::-1], hi[::-1])), spacing=g.spacing,
                              origin=tuple(float(v) for v in g.kji_to_lps(lo.astype(float))), direction=g.direction)
    return TumorCase(name, np.ascontiguousarray(ct.array[box]), np.ascontiguousarray(mask[box]), geometry)


def read_cases(folder: str | Path, margin_mm: tuple[float, float, float]) -> list[TumorCase]:
    """Every case of ``folder``, checked and cropped to its tumours, one at a time (a site's CTs
    need not fit in memory together). Any bad case refuses the whole folder, naming that case.

    Parameters
    ----------
    folder : str or Path
        The folder of pairs (see :func:`find_case_pairs`).
    margin_mm : tuple of float
        Context kept around the tumours, (k, j, i) in mm.

    Returns
    -------
    list of TumorCase
        Sorted by name.

    Raises
    ------
    InputError
        From :func:`find_case_pairs` or :func:`read_pair`.
    """
    cases = []
    for pair in find_case_pairs(folder):
        ct, mask = read_pair(pair)
        cases.append(crop_to_tumor(pair.name, ct, mask, margin_mm))
    return cases


def safe_case_name(name: str) -> str:
    """A file-name stem from a node's or file's name (letters, digits, ``-`` and ``_``)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip()).strip("_")
    return stem or "case"


def unique_case_name(folder: str | Path, stem: str) -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ... : the first that no case of ``folder`` uses yet."""
    folder = Path(folder)
    stem, n, name = safe_case_name(stem), 1, safe_case_name(stem)
    while any((folder / f"{name}{suffix}").exists() for suffix in (CT_SUFFIX, SEGMENTATION_SUFFIX, "")):
        n += 1
        name = f"{stem}_{n}"
    return name


def write_case(folder: str | Path, name: str, ct: CTVolume, tumor: np.ndarray,
               overwrite: bool = False) -> tuple[Path, Path]:
    """Write one case for fine-tuning: ``folder/NAME.nrrd`` and ``folder/NAME.seg.nrrd`` (a
    ``tumor`` segment on the CT's grid). Each file is written under a hidden temporary name and
    moved into place once complete; the folder is made if needed.

    Parameters
    ----------
    folder : str or Path
        The cases folder.
    name : str
        The case's name (a file-name stem: letters, digits, ``-`` and ``_``).
    ct : CTVolume
        The CT, in HU.
    tumor : ndarray
        The corrected tumour, a (k, j, i) bool mask on the CT's grid.
    overwrite : bool, optional
        Replace a case of that name; without it such a case is refused.

    Returns
    -------
    tuple of Path
        The CT file and the segmentation file.

    Raises
    ------
    InputError
        If the name is not a plain stem, the mask is empty or not on the CT's grid, the case
        exists (without ``overwrite``) or the folder cannot be written.
    """
    folder = Path(folder)
    if safe_case_name(name) != name:
        raise InputError(f"case name {name!r}: use letters, digits, '-' and '_' only")
    tumor = np.asarray(tumor, dtype=bool)
    if tumor.shape != tuple(ct.geometry.shape_kji):
        raise InputError(f"the tumour mask {tumor.shape} is not on the CT's grid {tuple(ct.geometry.shape_kji)}")
    if not tumor.any():
        raise InputError("there is no tumour to save: segment (or paint) the tumour first")
    ct_path, seg_path = folder / f"{name}{CT_SUFFIX}", folder / f"{name}{SEGMENTATION_SUFFIX}"
    if not overwrite and (ct_path.exists() or seg_path.exists() or (folder / name).exists()):
        raise InputError(f"case {name!r} exists already", folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial_ct = _write_partial(folder, ct_path, lambda p: write_image(ct.array, ct.geometry, p))
        try:
            partial_seg = _write_partial(folder, seg_path,
                                         lambda p: write_segments({TUMOR: tumor}, ct.geometry, p, {TUMOR: TUMOR_COLOR}))
        except BaseException:
            partial_ct.unlink(missing_ok=True)
            raise
        os.replace(partial_ct, ct_path)  # the CT first: a case counts once its segmentation is there
        os.replace(partial_seg, seg_path)
    except OSError as exc:
        raise InputError(f"cannot write the case here ({exc.strerror or exc})", folder) from None
    return ct_path, seg_path


def _write_partial(folder: Path, target: Path, write) -> Path:
    """``write(path)`` to a hidden file beside ``target``; the file is removed if writing fails."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.partial-", suffix=CT_SUFFIX, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes it private; a case file is not
    try:
        write(name)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
