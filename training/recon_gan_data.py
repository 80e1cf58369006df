"""Training and validation pairs for the reconstruction GAN beyond the small synthetic shapes
of :mod:`train_recon_gan`: real tumour masks cut into thick slices, large synthetic masses,
and the held-out synthetic shapes its learning curve is measured on.

- Real: the masks the project may train on, at their own resolution: lung1's label and each
  of LIDC-IDRI-0001's four readers' masks separately (their disagreement is label noise the
  model should not learn to follow). Each pair flips, transposes, rotates and shifts the mask
  in-plane (on its signed distance, so the outline stays smooth), then keeps every
  ``factor``-th slice (2–4) from a random ``offset``, as :func:`thick_slice_cases.decimate_label`
  does for the benchmark. The target is the original mask between its own slices by
  shape-based interpolation, so the network is not taught the label's staircase.
  The IBSI crop is never read here: its licence is non-commercial; it is scored only.
- Large masses: synthetic shapes of radius 25–50 mm (the small ones stop at 25 mm).
- Decimated labels: synthetic shapes of radius 5–50 mm labelled on native slices and cut
  like the real masks (:func:`labelled_pair`).
- Validation: synthetic shapes from generator seeds 8000+ (training uses seeds below 8000,
  the benchmark 9001+), scored by mean surface distance and Dice on the network's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import DATA
from scipy import ndimage as ndi

from LungTumorReconDev.synthetic_thorax import FREE_TUMOR_KINDS
from LungTumorReconDev.thick_slice_cases import ThickSliceCase, synthetic_thick_case
from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.surface.gan import LUNG_HU, TUMOR_HU, grid_points_kji, prepare_inputs, truth_on_grid
from LungTumorReconLib.surface.marching_cubes import crop_to_mask
from LungTumorReconLib.surface.shape_interpolation import signed_distance_mm

# The real cases training may read, by the names the registry's ``training.real`` lists. The
# IBSI crop is deliberately absent (non-commercial licence): every model is scored on it.
REAL_CASES = ("lung1", "LIDC-IDRI-0001")
VALIDATION_SEED = 8000


@dataclass
class RealMask:
    case: str  # one of REAL_CASES
    reader: str  # "label" or "reader N"
    mask: np.ndarray  # (k, j, i) bool, cropped around the tumour
    geometry: VolumeGeometry  # the crop's grid, the CT's spacing


def _crop(mask: np.ndarray, geometry: VolumeGeometry, margin: int = 12) -> tuple[np.ndarray, VolumeGeometry]:
    """The mask's box plus ``margin`` pixels in-plane (room to rotate) and all its slices."""
    crop, lo = crop_to_mask(mask, margin)
    lo[0] = max(lo[0] + margin, 0)  # slices: the tumour's own; empty ones are added when cut
    crop = crop[margin: crop.shape[0] - margin]
    origin = geometry.ijk_to_lps(np.asarray(lo[::-1], dtype=float))
    return crop, VolumeGeometry(size=crop.shape[::-1], spacing=geometry.spacing, origin=tuple(float(v) for v in origin),
                                direction=geometry.direction)


def read_real_masks(exclude: tuple[str, ...] = (), data: Path = DATA) -> list[RealMask]:
    """The trainable real masks (:data:`REAL_CASES` less ``exclude``), one per reader.

    Parameters
    ----------
    exclude : tuple of str, optional
        Case names to leave out (a leave-one-out fold).
    data : Path, optional
        The shared data folder.

    Returns
    -------
    list of RealMask
        lung1's label, and LIDC-IDRI-0001's four readers' masks, cropped around the tumour.
    """
    from LungTumorReconDev.lidc_annotations import read_lidc_reader_masks
    from LungTumorReconLib.io.ct import read_ct, read_label_on_grid

    unknown = set(exclude) - set(REAL_CASES)
    if unknown:
        raise SystemExit(f"error: --exclude {sorted(unknown)}: not a trainable real case ({', '.join(REAL_CASES)})")
    out = []
    if "lung1" not in exclude:
        ct = read_ct(data / "pyradiomics_lung1" / "lung1_image.nrrd")
        label = read_label_on_grid(data / "pyradiomics_lung1" / "lung1_label.nrrd", ct.geometry, threshold=0.0)
        out.append(RealMask("lung1", "label", *_crop(label, ct.geometry)))
    if "LIDC-IDRI-0001" not in exclude:
        ct = read_ct(data / "lidc_idri_0001" / "dicom")
        readers = read_lidc_reader_masks(data / "lidc_idri_0001" / "xml" / "69.xml", ct.geometry)
        out += [RealMask("LIDC-IDRI-0001", f"reader {n + 1}", *_crop(r, ct.geometry))
                for n, r in enumerate(readers) if r.any()]
    return out


def augment_in_plane(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random in-plane flip, transpose, rotation (any angle) and sub-pixel shift of each
    slice, on the slice's signed distance (linear) so the outline stays smooth; and a random
    flip of the slice order. The pixels are assumed square (both real cases have them)."""
    out = mask[:, ::-1] if rng.random() < 0.5 else mask
    out = out[:, :, ::-1] if rng.random() < 0.5 else out
    out = out.transpose(0, 2, 1) if rng.random() < 0.5 else out
    out = out[::-1] if rng.random() < 0.5 else out
    angle = rng.uniform(0.0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = (np.asarray(out.shape[1:]) - 1) / 2.0
    offset = centre - rotation @ centre + rng.uniform(-0.5, 0.5, 2)
    result = np.zeros(out.shape, dtype=bool)
    for k in np.flatnonzero(out.any(axis=(1, 2))):
        phi = signed_distance_mm(np.ascontiguousarray(out[k]), (1.0, 1.0))
        moved = ndi.affine_transform(phi, rotation, offset=offset, order=1, mode="nearest")
        result[k] = moved < 0.0
    return result


def cut_thick(mask: np.ndarray, geometry: VolumeGeometry, factor: int, offset: int) -> ThickSliceCase | None:
    """Every ``factor``-th slice of ``mask`` from slice ``offset``, with ``factor`` empty
    slices added beyond each end first (so the tumour's ends are cut as a scan would cut
    them); the padded mask is the truth. None when no kept slice holds tumour."""
    padded = np.pad(mask.astype(bool), ((factor, factor), (0, 0), (0, 0)))
    origin = geometry.ijk_to_lps(np.array([0.0, 0.0, -factor]))
    truth_geometry = VolumeGeometry(size=padded.shape[::-1], spacing=geometry.spacing,
                                    origin=tuple(float(v) for v in origin), direction=geometry.direction)
    thick = padded[offset::factor]
    if not thick.any():
        return None
    first = truth_geometry.ijk_to_lps(np.array([0.0, 0.0, float(offset)]))
    spacing = (geometry.spacing[0], geometry.spacing[1], geometry.spacing[2] * factor)
    thick_geometry = VolumeGeometry(size=thick.shape[::-1], spacing=spacing, origin=tuple(float(v) for v in first),
                                    direction=geometry.direction)
    ct = np.where(thick, TUMOR_HU, LUNG_HU).astype(np.float32)  # the mask-only model never reads it
    return ThickSliceCase("real", thick.copy(), ct, thick_geometry, padded, truth_geometry)


def interpolated_truth_on_grid(truth: np.ndarray, truth_geometry: VolumeGeometry, grid: VolumeGeometry
                               ) -> np.ndarray:
    """A label with slices of its own, on the GAN grid by shape-based interpolation (cubic
    spline of its signed distance): equal to the label at its voxel centres, smooth between."""
    crop, lo = crop_to_mask(truth, 3)
    phi = signed_distance_mm(crop, tuple(truth_geometry.spacing[::-1]))
    g = grid.size[0]
    kji = grid_points_kji(truth_geometry, grid) - lo[:, None]
    values = ndi.map_coordinates(phi, kji, order=3, mode="nearest")
    return values.reshape(g, g, g) < 0.0


def real_pair(real: RealMask, seed: int, grid_size: int = 64):
    """One augmented pair from a real mask: (slices, volume, target), as ``make_pair``'s."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        factor = int(rng.integers(2, 5))
        case = cut_thick(augment_in_plane(real.mask, rng), real.geometry, factor, int(rng.integers(factor)))
        if case is not None:
            break
    else:
        raise RuntimeError(f"no thick cut of {real.case} {real.reader} holds tumour")
    inputs = prepare_inputs(case.mask, case.ct, case.geometry, min_size=grid_size)
    return inputs.slices, inputs.volume, interpolated_truth_on_grid(case.truth, case.truth_geometry, inputs.grid)


def large_mass_pair(seed: int, grid_size: int = 64):
    """A synthetic mass of radius 25–50 mm, pixels 0.7–1 mm (finer would cost minutes per
    pair and the grid is capped at 128³ anyway), slices 2.5–10 mm."""
    rng = np.random.default_rng(seed)
    kind = FREE_TUMOR_KINDS[seed % len(FREE_TUMOR_KINDS)]
    case = synthetic_thick_case(kind, seed, slice_mm=float(rng.choice([2.5, 3.0, 5.0, 6.0, 10.0])),
                                in_plane_mm=float(rng.uniform(0.7, 1.0)), radius_mm=float(rng.uniform(25.0, 50.0)),
                                neighbours=bool(rng.random() < 0.7))
    inputs = prepare_inputs(case.mask, case.ct, case.geometry, min_size=grid_size)
    return inputs.slices, inputs.volume, truth_on_grid(case.truth, case.truth_geometry, inputs.grid)


def labelled_pair(seed: int, grid_size: int = 64):
    """A synthetic shape (radius 5–50 mm, log-uniform) as a reader would label it on native
    slices (1.25–3 mm, partial volume ≥ 0.5), then decimated like a real label (factor 2–4,
    random offset; the benchmark's real cases are made so): real labels end where a slice no
    longer shows the tumour, not where a fine truth would, and these pairs teach that."""
    rng = np.random.default_rng(seed)
    kind = FREE_TUMOR_KINDS[seed % len(FREE_TUMOR_KINDS)]
    radius = float(np.exp(rng.uniform(np.log(5.0), np.log(50.0))))
    pixel = float(rng.uniform(0.6, 1.0) if radius > 20 else rng.uniform(0.5, 0.9))  # large: fewer voxels to make
    native = synthetic_thick_case(kind, seed, slice_mm=float(rng.choice([1.25, 2.0, 2.5, 3.0])), in_plane_mm=pixel,
                                  radius_mm=radius)
    factor = int(rng.integers(2, 5))
    for offset in rng.permutation(factor):
        case = cut_thick(native.mask, native.geometry, factor, int(offset))
        if case is not None:
            break
    inputs = prepare_inputs(case.mask, case.ct, case.geometry, min_size=grid_size)
    return inputs.slices, inputs.volume, interpolated_truth_on_grid(case.truth, case.truth_geometry, inputs.grid)


def validation_pairs(count: int, grid_size: int = 64) -> list:
    """``count`` held-out synthetic pairs (seeds 8000+), in turn: a small shape at 2.5–10 mm
    slices, a decimated label (:func:`labelled_pair`), a large mass."""
    out = []
    for n in range(count):
        seed = VALIDATION_SEED + n
        if n % 3 == 2:
            pair = large_mass_pair(seed, grid_size)
        elif n % 3 == 1:
            pair = labelled_pair(seed, grid_size)
        else:
            rng = np.random.default_rng(seed)
            case = synthetic_thick_case(FREE_TUMOR_KINDS[n % len(FREE_TUMOR_KINDS)], seed,
                                        slice_mm=float(rng.choice([2.5, 5.0, 10.0])),
                                        in_plane_mm=float(rng.uniform(0.5, 1.0)), radius_mm=float(rng.uniform(4, 25)))
            inputs = prepare_inputs(case.mask, case.ct, case.geometry, min_size=grid_size)
            pair = (inputs.slices, inputs.volume, truth_on_grid(case.truth, case.truth_geometry, inputs.grid))
        out.append(pair)
    return out


def validate(generator, pairs: list, config, device: str = "cpu") -> dict:
    """Mean surface distance (in grid voxels, 0.4–1.1 mm each) and Dice of the generator's shapes on ``pairs``,
    and of the prior alone (the interpolated shape, zero correction) for reference."""
    import torch

    from LungTumorReconLib.evaluation import compare_masks

    was_training = generator.training
    generator.eval()
    msd, dice, prior_msd = [], [], []
    with torch.inference_mode():
        for slices, volume, target in pairs:
            logits = generator(torch.from_numpy(slices[None, :, : config.slice_channels]).to(device),
                               torch.tensor([len(slices)]),
                               torch.from_numpy(volume[None, : config.volume_channels]).to(device))[0, 0].cpu().numpy()
            s = compare_masks(logits > 0, target, (1.0, 1.0, 1.0))
            p = compare_masks(volume[0] < 0, target, (1.0, 1.0, 1.0))
            msd.append(s["msd_mm"])
            dice.append(s["dice"])
            prior_msd.append(p["msd_mm"])
    generator.train(was_training)
    return {"val_msd": float(np.mean(msd)), "val_dice": float(np.mean(dice)),
            "val_prior_msd": float(np.mean(prior_msd))}
