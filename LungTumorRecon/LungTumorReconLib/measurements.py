"""Tumour measurements: volume, RECIST-style diameters, 3D diameter, sphericity, HU statistics.

Shape features follow the pyradiomics/IBSI definitions on a marching-cubes mesh:
sphericity = π^(1/3) (6V)^(2/3) / A, maximum 3D diameter = the largest distance between
mesh vertices. The axial diameters are measured on the in-plane marching-squares contour of
each axial slice: the longest diameter over all slices, and on that slice the short axis as
the extent perpendicular to it (the caliper width, an upper bound of the longest
perpendicular chord).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from skimage import measure

from .coordinates import VolumeGeometry
from .seeds_io import TUMOR, Seed


@dataclass
class TumorMeasurement:
    seed_lps: list[float] | None
    volume_ml: float
    voxels: int
    longest_axial_diameter_mm: float
    short_axis_mm: float
    max_3d_diameter_mm: float
    sphericity: float
    mean_hu: float
    std_hu: float
    centroid_lps: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def split_tumors(mask: np.ndarray, geometry: VolumeGeometry, seeds: list[Seed]) -> list[tuple[Seed | None, np.ndarray]]:
    """One mask per tumour: the 3D component under (or nearest to) each tumour seed.

    With no tumour seed, every connected component is a tumour.
    """
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return []
    tumor_seeds = [s for s in seeds if s.label == TUMOR]
    if not tumor_seeds:
        return [(None, labels == lab) for lab in range(1, n + 1)]
    result = []
    for seed in tumor_seeds:
        kji = geometry.nearest_kji(np.asarray(seed.lps))
        lab = labels[kji]
        if lab == 0:  # seed just outside the tumour: take the nearest component
            _, (kk, jj, ii) = ndi.distance_transform_edt(
                labels == 0, sampling=geometry.spacing[::-1], return_indices=True
            )
            lab = labels[kk[kji], jj[kji], ii[kji]]
        result.append((seed, labels == lab))
    return result


def _max_pairwise_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        pass  # flat or tiny point sets: use every point
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


def axial_diameters(mask: np.ndarray, geometry: VolumeGeometry) -> tuple[float, float]:
    """Longest axial diameter and its perpendicular short axis, in mm."""
    sj, si = geometry.spacing[1], geometry.spacing[0]
    best = (0.0, 0.0)
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        contours = measure.find_contours(np.pad(mask[k].astype(float), 1), 0.5)
        if not contours:
            continue
        pts = np.concatenate(contours) * np.array([sj, si])
        try:
            pts = pts[ConvexHull(pts).vertices]
        except (QhullError, ValueError):
            pass
        diff = pts[:, None, :] - pts[None, :, :]
        dist = np.sqrt((diff**2).sum(-1))
        a, b = np.unravel_index(np.argmax(dist), dist.shape)
        longest = float(dist[a, b])
        if longest <= best[0]:
            continue
        axis = (pts[b] - pts[a]) / max(longest, 1e-9)
        perpendicular = np.array([-axis[1], axis[0]])
        proj = pts @ perpendicular
        best = (longest, float(proj.max() - proj.min()))
    return best


def measure_tumor(mask: np.ndarray, hu: np.ndarray, geometry: VolumeGeometry, seed: Seed | None) -> TumorMeasurement:
    spacing_kji = tuple(geometry.spacing[::-1])
    voxels = int(mask.sum())
    padded = np.pad(mask.astype(np.float32), 1)
    verts, faces, _, _ = measure.marching_cubes(padded, 0.5, spacing=spacing_kji)
    area = measure.mesh_surface_area(verts, faces)
    volume_mm3 = voxels * float(np.prod(geometry.spacing))
    sphericity = float(np.pi ** (1 / 3) * (6 * volume_mm3) ** (2 / 3) / area) if area > 0 else 0.0
    longest, short = axial_diameters(mask, geometry)
    values = hu[mask].astype(np.float64)
    centroid = geometry.kji_to_lps(np.array(ndi.center_of_mass(mask)))
    return TumorMeasurement(
        seed_lps=list(seed.lps) if seed else None,
        volume_ml=volume_mm3 / 1000.0,
        voxels=voxels,
        longest_axial_diameter_mm=longest,
        short_axis_mm=short,
        max_3d_diameter_mm=_max_pairwise_distance(verts),
        sphericity=sphericity,
        mean_hu=float(values.mean()),
        std_hu=float(values.std()),
        centroid_lps=[float(c) for c in centroid],
    )
