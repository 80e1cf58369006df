"""Pairs of (thick-slice tumour, fine truth) for the 3D reconstruction's benchmark and training.

- Synthetic: a tumour shape from :func:`synthetic_thorax.tumor_shape` is sampled on a fine
  isotropic grid (the truth), and its thick slices are the fine occupancy averaged over each
  slice's thickness (partial volume): the mask is occupancy ≥ 0.5, the CT is the occupancy
  blended between lung and tumour HU with noise, as a scanner would average it.
- Real: a label is decimated (every ``factor``-th slice kept, so 2.5 mm becomes 5 mm); the
  original slices are the truth between the kept ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.surface.gan import LUNG_HU, TUMOR_HU  # the levels the GAN's HU input is normalised between

NOISE_HU, SOFT_TISSUE_HU = 20.0, 40.0


@dataclass
class ThickSliceCase:
    name: str
    mask: np.ndarray  # (k, j, i) bool on the thick grid
    ct: np.ndarray  # (k, j, i) float32 HU on the thick grid (partial volume)
    geometry: VolumeGeometry  # thick grid
    truth: np.ndarray  # (k, j, i) bool on the fine grid
    truth_geometry: VolumeGeometry  # fine grid


def synthetic_thick_case(
    kind: str, seed: int, slice_mm: float = 5.0, in_plane_mm: float = 0.5, radius_mm: float | None = None,
    neighbours: bool = False,
) -> ThickSliceCase:
    """A random ``kind`` tumour at 0.5 mm isotropic, and its ``slice_mm`` slices; the slice
    grid's phase against the tumour is random, as in a scan. With ``neighbours``, the CT (not
    the mask or truth) also holds soft tissue beside the tumour, as real CT does: a chest
    wall near or against it, and vessels passing by or touching it."""
    from .synthetic_tumors import tumor_shape

    rng = np.random.default_rng(seed)
    radius = float(radius_mm if radius_mm is not None else rng.uniform(5.0, 14.0))
    field, extent = tumor_shape(kind, radius, int(rng.integers(1 << 31)))
    per_slice = int(round(slice_mm / in_plane_mm))
    half = extent + slice_mm  # room for a full thick slice beyond the shape at each end
    n_xy = int(np.ceil(2 * half / in_plane_mm)) + 1
    n_thick = int(np.ceil(2 * half / slice_mm)) + 1
    n_fine_z = n_thick * per_slice
    phase = rng.uniform(0.0, slice_mm)
    x0 = -half
    z0 = -half - phase
    # fine truth: voxel centres every in_plane_mm, z from z0 + in_plane_mm / 2
    xs = x0 + in_plane_mm * np.arange(n_xy)
    zs = z0 + in_plane_mm * (np.arange(n_fine_z) + 0.5)
    z, y, x = np.meshgrid(zs, xs, xs, indexing="ij")
    truth = field(x, y, z) <= 0.0
    occupancy = truth.reshape(n_thick, per_slice, n_xy, n_xy).mean(axis=1)
    ct = LUNG_HU + (TUMOR_HU - LUNG_HU) * occupancy + rng.normal(0.0, NOISE_HU, occupancy.shape)
    if neighbours:
        other = _neighbours(rng, truth, x, y, z) & ~truth
        ct += (SOFT_TISSUE_HU - LUNG_HU) * other.reshape(n_thick, per_slice, n_xy, n_xy).mean(axis=1)
    truth_geometry = VolumeGeometry(size=(n_xy, n_xy, n_fine_z), spacing=(in_plane_mm,) * 3,
                                    origin=(x0, x0, float(zs[0])))
    thick_geometry = VolumeGeometry(size=(n_xy, n_xy, n_thick), spacing=(in_plane_mm, in_plane_mm, slice_mm),
                                    origin=(x0, x0, z0 + slice_mm / 2))
    return ThickSliceCase(f"{kind} #{seed}", occupancy >= 0.5, ct.astype(np.float32), thick_geometry, truth,
                          truth_geometry)


def _neighbours(rng: np.random.Generator, truth: np.ndarray, x, y, z) -> np.ndarray:
    """Soft tissue beside the tumour on the fine grid: a wall (half-space) at −2…6 mm from its
    surface in a random, mostly in-plane direction (half of the cases), and 1–3 vessels of
    1–3 mm radius passing −1…4 mm from its surface."""
    from .synthetic_shapes import _Capsule

    points = np.stack([x[truth], y[truth], z[truth]], axis=1)
    centre = points.mean(axis=0)
    out = np.zeros(truth.shape, dtype=bool)
    if rng.random() < 0.5:
        u = np.array([*rng.normal(size=2), 0.3 * rng.normal()])
        u /= np.linalg.norm(u)
        reach = float((points @ u).max())
        out |= x * u[0] + y * u[1] + z * u[2] >= reach + rng.uniform(-2.0, 6.0)
    for _ in range(int(rng.integers(1, 4))):
        b = points[rng.integers(len(points))]
        normal = (b - centre) / max(np.linalg.norm(b - centre), 1e-6)
        radius = rng.uniform(1.0, 3.0)
        q = b + normal * (radius + rng.uniform(-1.0, 4.0))
        v = np.cross(normal, rng.normal(size=3))
        v /= max(np.linalg.norm(v), 1e-6)
        out |= _Capsule(q - 40.0 * v, q + 40.0 * v, radius).field(x, y, z) <= 0.0
    return out


def decimate_label(
    name: str, mask: np.ndarray, ct: np.ndarray, geometry: VolumeGeometry, factor: int = 2
) -> ThickSliceCase:
    """Keep every ``factor``-th slice of a real label (and its CT), starting where the
    tumour's slices start, so the kept slices are spread over it; the original is the truth."""
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    first = ks[0] % factor
    kept = slice(first, None, factor)
    origin = geometry.kji_to_lps(np.array([first, 0, 0]))
    spacing = (geometry.spacing[0], geometry.spacing[1], geometry.spacing[2] * factor)
    thick = VolumeGeometry(size=(geometry.size[0], geometry.size[1], len(range(*kept.indices(mask.shape[0])))),
                           spacing=spacing, origin=tuple(float(v) for v in origin), direction=geometry.direction)
    return ThickSliceCase(name, mask[kept].copy(), ct[kept].astype(np.float32), thick, mask.astype(bool), geometry)
