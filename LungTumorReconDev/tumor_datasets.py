"""Tumour data sets for the deep segmenters: each adapter returns :class:`TumorCase` objects
(HU and tumour mask on the CT's own grid, (k, j, i), with its LPS geometry).

- NSCLC-Radiomics style: a DICOM CT series and an RTSTRUCT whose ROI ``GTV-1`` holds the
  tumour's planar contours (LPS mm), filled per slice with the even-odd rule (so a contour
  inside another cuts a hole, as RTSTRUCT viewers draw it);
- LIDC-IDRI: a DICOM CT and its reader XML; the truth is where at least ``min_readers``
  readers' filled contours agree (the usual consensus is 2);
- MSD Task06 Lung: ``dataset.json`` with ``training`` pairs of NIfTI image and label;
- the project's synthetic thorax (:mod:`synthetic_thorax`), truth known exactly;
- the MSD 2D patches (HDF5: ``images`` and ``labels``, (N, 1, 48, 48), 2 mm, 0–1 scaled).

Readers raise :class:`InputError` with a one-line reason for anything they cannot use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.dicom.masks import read_dicom_segments
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.io.seeds import TUMOR


@dataclass
class TumorCase:
    name: str
    hu: np.ndarray  # (k, j, i) float32 HU
    mask: np.ndarray  # (k, j, i) bool tumour
    geometry: VolumeGeometry
    lungs: np.ndarray | None = None  # (k, j, i) bool, when the source has them
    tumors: list[dict] | None = None  # synthetic: each tumour's kind, centre_lps, radius_mm (make_thorax's records)

    @property
    def seed_lps(self) -> tuple[float, float, float]:
        """A point inside the tumour (the voxel nearest the centroid of its largest slice
        section): where a user would click the ``tumor`` seed."""
        counts = self.mask.sum(axis=(1, 2))
        k = int(np.argmax(counts))
        jj, ii = np.nonzero(self.mask[k])
        centre = np.array([jj.mean(), ii.mean()])
        nearest = np.argmin((jj - centre[0]) ** 2 + (ii - centre[1]) ** 2)
        return tuple(float(v) for v in self.geometry.kji_to_lps(np.array([k, jj[nearest], ii[nearest]], dtype=float)))


def _case(name: str, ct, mask: np.ndarray) -> TumorCase:
    if not mask.any():
        raise InputError(f"{name}: the tumour label is empty on the CT's grid")
    return TumorCase(name, ct.array.astype(np.float32), mask, ct.geometry)


# --- NSCLC-Radiomics (DICOM + RTSTRUCT) -------------------------------------------------

def find_rtstruct(folder: str | Path) -> Path:
    """The RTSTRUCT file under ``folder`` (searched recursively)."""
    import pydicom

    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            try:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:
                continue
            if getattr(ds, "Modality", "") == "RTSTRUCT":
                return path
    raise InputError("no RTSTRUCT under this folder", folder)


def read_nsclc_radiomics_case(patient_folder: str | Path, roi_name: str = "GTV-1", name: str | None = None) -> TumorCase:
    """A patient folder of NSCLC-Radiomics: its CT series and its RTSTRUCT's ``GTV-1``."""
    folder = Path(patient_folder)
    ct = read_ct(folder)  # the CT series; RTSTRUCT and other objects are skipped
    rtstruct = find_rtstruct(folder)
    mask = read_dicom_segments(rtstruct, ct, roi=roi_name, tumor_only=True)[TUMOR]
    return _case(name or folder.name, ct, mask)


# --- LIDC-IDRI (DICOM + reader XML) -----------------------------------------------------

def read_lidc_case(dicom_folder: str | Path, xml_path: str | Path, min_readers: int = 2, name: str | None = None
                   ) -> TumorCase:
    """LIDC-IDRI: the truth is where >= ``min_readers`` readers' filled contours agree."""
    from .lidc_annotations import read_lidc_reader_masks

    ct = read_ct(dicom_folder)
    readers = read_lidc_reader_masks(xml_path, ct.geometry)
    if not readers:
        raise InputError("no reading sessions in the LIDC XML", xml_path)
    votes = np.sum(readers, axis=0)
    return _case(name or Path(dicom_folder).parent.name, ct, votes >= min_readers)


# --- MSD Task06 Lung (NIfTI + dataset.json) ---------------------------------------------

def read_msd_task06(root: str | Path) -> list[TumorCase]:
    """Every ``training`` pair of an MSD Task06 Lung folder (``dataset.json``, imagesTr/, labelsTr/)."""
    root = Path(root)
    index = root / "dataset.json"
    if not index.is_file():
        raise InputError("no dataset.json: not an MSD task folder", root)
    try:
        pairs = json.loads(index.read_text())["training"]
    except (ValueError, KeyError, TypeError):
        raise InputError("dataset.json has no 'training' list", index) from None
    cases = []
    for pair in pairs:
        image, label = root / pair["image"], root / pair["label"]
        ct = read_ct(image)
        cases.append(_case(Path(pair["image"]).name.split(".")[0], ct, read_label_on_grid(label, ct.geometry)))
    return cases


# --- the project's synthetic thorax ----------------------------------------------------

def synthetic_tumor_case(seed: int, kinds: tuple[str, ...] = ("solid",), size=(192, 192, 48),
                         spacing=(1.0, 1.0, 2.5), **imaging) -> TumorCase:
    """A synthetic chest (:func:`synthetic_thorax.make_thorax`, which takes ``imaging``'s
    keywords) with exact tumour and lung truth."""
    from .synthetic_thorax import make_thorax

    thorax = make_thorax(size=size, spacing=spacing, tumors=kinds, seed=seed, **imaging)
    lungs = thorax.labels["right lung"] | thorax.labels["left lung"]
    return TumorCase(f"synthetic {'+'.join(kinds)} #{seed}", thorax.ct.astype(np.float32), thorax.labels["tumor"],
                     thorax.geometry, lungs, thorax.tumors)


# Real CT's range: tumours 4-100 mm across (log-uniform), slices 0.6-5 mm, pixels 0.5-1 mm.
DIAMETER_RANGE_MM = (4.0, 100.0)
SLICE_THICKNESSES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
PIXEL_RANGE_MM = (0.5, 1.0)
FIELD_OF_VIEW_MM = (300.0, 220.0)  # in-plane, along the slices


def real_like_tumor_plan(rng: np.random.Generator, count: int = 2) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Kinds and radii (mm) of ``count`` tumours as real CT shows them: diameters log-uniform
    over :data:`DIAMETER_RANGE_MM`; those over 44 mm are masses against a pleural surface
    (no lung is deep enough to hold them free), and a quarter of those over 20 mm too."""
    from .synthetic_thorax import TUMOR_KINDS

    kinds, radii = [], []
    for _ in range(count):
        diameter = float(np.exp(rng.uniform(*np.log(DIAMETER_RANGE_MM))))
        attached = diameter > 44.0 or (diameter > 20.0 and rng.random() < 0.25)
        kind = "attached-mass" if attached else str(rng.choice(TUMOR_KINDS))
        if kind == "juxta-pleural" and diameter > 30.0:
            kind = "attached-mass"
        kinds.append(kind)
        radii.append(diameter / 2.0)
    return tuple(kinds), tuple(radii)


def real_like_synthetic_case(seed: int) -> TumorCase:
    """A synthetic chest drawn to cover real CT (training, validation and the deep segmenters'
    bench): two tumours from :func:`real_like_tumor_plan`; slice thickness, pixel size and
    reconstruction kernel (noise texture and edges, :data:`synthetic_thorax.KERNELS`) drawn
    at random. A tumour that finds no room is shrunk until it does."""
    from .synthetic_thorax import KERNELS

    rng = np.random.default_rng([seed, 22])
    kinds, radii = real_like_tumor_plan(rng)
    pixel = float(rng.uniform(*PIXEL_RANGE_MM))
    slice_mm = float(rng.choice(SLICE_THICKNESSES_MM))
    kernel_name = str(rng.choice(sorted(KERNELS)))
    kernel = KERNELS[kernel_name]
    n_in_plane = int(FIELD_OF_VIEW_MM[0] / pixel) // 8 * 8
    n_slices = int(round(FIELD_OF_VIEW_MM[1] / slice_mm))
    imaging = dict(noise_hu=float(rng.uniform(*kernel["noise_hu"])), blur_mm=kernel["blur_mm"],
                   noise_grain_mm=kernel["grain_mm"])
    for _ in range(8):
        try:
            case = synthetic_tumor_case(int(seed), kinds, size=(n_in_plane, n_in_plane, n_slices),
                                        spacing=(pixel, pixel, slice_mm), tumor_radii=radii, **imaging)
        except RuntimeError:  # no room for a tumour this large here
            radii = tuple(r * 0.8 for r in radii)
            continue
        diameters = "/".join(f"{2 * r:.0f}" for r in radii)
        case.name = f"synthetic {'+'.join(kinds)} {diameters} mm, {slice_mm:g} mm slices, {kernel_name} #{seed}"
        return case
    raise RuntimeError(f"synthetic case {seed}: could not place its tumours")


# --- MSD 2D patches (HDF5) -------------------------------------------------------------

def read_msd_patches(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks): (N, 48, 48) float32 in 0..1 and bool, 2 mm pixels."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        with h5py.File(path, "r") as f:
            images, labels = np.asarray(f["images"], dtype=np.float32), np.asarray(f["labels"])
    except (OSError, KeyError):
        raise InputError("not an HDF5 file with 'images' and 'labels'", path) from None
    if images.ndim != 4 or images.shape != labels.shape or images.shape[1] != 1:
        raise InputError(f"expected (N, 1, H, W) images and labels, got {images.shape} and {labels.shape}", path)
    return images[:, 0], labels[:, 0] > 0.5


# --- the real cases in ../shared/data, by name -----------------------------------------

REAL_CASES = ("lung1", "LIDC-IDRI-0001", "IBSI GTV")
TRAINABLE_REAL_CASES = ("lung1", "LIDC-IDRI-0001")  # the IBSI crop is non-commercial: evaluation only


def read_real_case(name: str, data: str | Path) -> TumorCase:
    data = Path(data)
    if name == "lung1":
        ct = read_ct(data / "pyradiomics_lung1" / "lung1_image.nrrd")
        return _case(name, ct, read_label_on_grid(data / "pyradiomics_lung1" / "lung1_label.nrrd", ct.geometry))
    if name == "LIDC-IDRI-0001":
        return read_lidc_case(data / "lidc_idri_0001" / "dicom", data / "lidc_idri_0001" / "xml" / "69.xml",
                              min_readers=2, name=name)
    if name == "IBSI GTV":
        return read_nsclc_radiomics_case(data / "ibsi_nsclc_crop" / "dicom", name=name)
    raise InputError(f"unknown real case {name!r}; known: {', '.join(REAL_CASES)}")
