"""Tumour measurements: volume, RECIST-style diameters, 3D diameter, sphericity, HU statistics.

Shape features follow the pyradiomics/IBSI definitions on a marching-cubes mesh:
sphericity = π^(1/3) (6V)^(2/3) / A, maximum 3D diameter = the largest distance between
mesh vertices. The axial diameters are measured on the in-plane marching-squares contour of
each axial slice: the longest diameter over all slices, and on that slice the short axis as
the extent perpendicular to it (the caliper width, an upper bound of the longest
perpendicular chord).

For Lung-RADS the mean diameter is (long + short axis) / 2 to 0.1 mm, and the nodule is split
into its solid and ground-glass parts on its own voxels' HU, whatever method drew the mask
(:func:`solid_component`): a 2-cluster GK (:func:`~LungTumorReconLib.tumor.gk.gustafson_kessel`)
whose denser cluster's maximum-membership voxels are the solid component, unless the nodule
is too small, or the clusters too close or on the same side of ``SOLID_HU``, to hold two
kinds; it is then all one kind, solid when its mean HU reaches ``SOLID_HU``. The solid share
is counted without the mask's boundary voxels (partial volume, neither kind), and the solid
component's mean diameter is that of its largest connected part. A single run's category is
a baseline one (:mod:`~LungTumorReconLib.tumor.lungrads`): a suggestion, not for clinical use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from skimage import measure

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape, check_volume
from LungTumorReconLib.followup.growth import mean_diameter_mm
from LungTumorReconLib.io.seeds import TUMOR, Seed
from LungTumorReconLib.tumor import lungrads
from LungTumorReconLib.tumor.gk import gustafson_kessel

SOLID_HU = -300.0  # the usual solid / ground-glass cut-off: soft tissue is denser, ground glass lighter
MIN_SPLIT_VOXELS = 30  # fewer inside the rim cannot show two parts (a ~5 mm nodule on 0.7 x 0.7 x 1.25 mm voxels)
MIN_SEPARATION_HU = 150.0  # cluster centres closer than this split one kind by its noise, not two kinds
MAX_SPLIT_FIT_VOXELS = 20000  # a large tumour's clusters are fitted on a fixed sample of its voxels
_SIX_CONNECTED = ndi.generate_binary_structure(3, 1)


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
    # Lung-RADS-ready (None in results written before they existed)
    mean_diameter_mm: float | None = None
    solid_fraction: float | None = None
    solid_mean_diameter_mm: float | None = None
    nodule_type: str | None = None
    lung_rads: dict | None = None  # category, rule, label: a suggestion, not for clinical use
    # the two axes' end points (LPS mm), on the longest diameter's axial slice (None in older results)
    longest_axis_lps: list[list[float]] | None = None
    short_axis_lps: list[list[float]] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def split_tumors(mask: np.ndarray, geometry: VolumeGeometry, seeds: list[Seed]) -> list[tuple[Seed | None, np.ndarray]]:
    """One mask per tumour: the 3D component under (or nearest to) each tumour seed.

    With no tumour seed, every connected component (26-connected) is a tumour.

    Parameters
    ----------
    mask : ndarray
        Every tumour, bool (k, j, i) on ``geometry``'s grid.
    geometry : VolumeGeometry
        The grid; its shape (k, j, i) is ``mask.shape``.
    seeds : list of Seed
        The markups points; only those labelled ``tumor`` are used.

    Returns
    -------
    list of (Seed or None, ndarray)
        Per tumour seed its seed and component (whole-volume bool mask), in the seeds' order;
        without tumour seeds, ``(None, component)`` per component. Empty for an empty mask.

    Raises
    ------
    ValueError
        If ``mask`` is not 3D, its shape is not the geometry's, or the spacing is not positive.

    Examples
    --------
    >>> g = VolumeGeometry((20, 20, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[2:5, 2:5, 2:5] = mask[10:15, 10:15, 10:15] = True
    >>> [int(part.sum()) for _, part in split_tumors(mask, g, [])]
    [27, 125]
    >>> [int(part.sum()) for _, part in split_tumors(mask, g, [Seed("tumor", (16.0, 12.0, 12.0))])]
    [125]
    """
    check_volume(mask, geometry, "mask")
    box = _bounding_box(mask)
    if box is None:
        return []
    # labelled within the mask's bounding box: a 512 x 512 x 600 CT stays cheap
    labels, n = ndi.label(mask[box], structure=np.ones((3, 3, 3)))
    offset = np.array([b.start for b in box])

    def full(lab: int) -> np.ndarray:
        out = np.zeros(mask.shape, dtype=bool)
        out[box] = labels == lab
        return out

    tumor_seeds = [s for s in seeds if s.label == TUMOR]
    if not tumor_seeds:
        return [(None, full(lab)) for lab in range(1, n + 1)]
    points = np.argwhere(labels > 0)
    result = []
    for seed in tumor_seeds:
        kji = np.array(geometry.nearest_kji(np.asarray(seed.lps))) - offset
        inside = np.all(kji >= 0) and np.all(kji < labels.shape)
        lab = labels[tuple(kji)] if inside else 0
        if lab == 0:  # seed just outside the tumour: the component of the nearest tumour voxel
            d2 = ((((points - kji) * np.asarray(geometry.spacing[::-1])) ** 2).sum(axis=1))
            lab = labels[tuple(points[int(np.argmin(d2))])]
        result.append((seed, full(lab)))
    return result


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """The smallest box holding every True voxel (None for an empty mask)."""
    box = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if not len(present):
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def _max_pairwise_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    try:
        points = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        pass  # flat or tiny point sets: use every point
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).max())


@dataclass
class AxialAxes:
    """The longest axial diameter and its perpendicular short axis (mm), each with its two end
    points as fractional (k, j, i) indices on the measured slice."""

    longest_mm: float
    short_mm: float
    longest_kji: np.ndarray  # (2, 3)
    short_kji: np.ndarray  # (2, 3)


def axial_axes(mask: np.ndarray, geometry: VolumeGeometry) -> AxialAxes:
    """The longest axial diameter over all slices and, on its slice, the short axis: the
    caliper width perpendicular to it, drawn across the middle of the two points that bound it
    (module docstring). All zero, with zero end points, for an empty mask."""
    sj, si = geometry.spacing[1], geometry.spacing[0]
    best = AxialAxes(0.0, 0.0, np.zeros((2, 3)), np.zeros((2, 3)))
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        contours = measure.find_contours(np.pad(mask[k].astype(float), 1), 0.5)
        if not contours:
            continue
        pts = np.concatenate(contours) * np.array([sj, si])  # (j, i) in mm, padded by one voxel
        try:
            pts = pts[ConvexHull(pts).vertices]
        except (QhullError, ValueError):
            pass
        diff = pts[:, None, :] - pts[None, :, :]
        dist = np.sqrt((diff**2).sum(-1))
        a, b = np.unravel_index(np.argmax(dist), dist.shape)
        longest = float(dist[a, b])
        if longest <= best.longest_mm:
            continue
        axis = (pts[b] - pts[a]) / max(longest, 1e-9)
        perpendicular = np.array([-axis[1], axis[0]])
        proj = pts @ perpendicular
        low, high = int(np.argmin(proj)), int(np.argmax(proj))
        middle = pts[a] + axis * (((pts[low] + pts[high]) / 2 - pts[a]) @ axis)
        short_ends = middle + np.outer(proj[[low, high]] - middle @ perpendicular, perpendicular)

        def kji(points_mm: np.ndarray) -> np.ndarray:
            return np.column_stack([np.full(len(points_mm), float(k)), points_mm / [sj, si] - 1.0])

        best = AxialAxes(longest, float(proj[high] - proj[low]), kji(pts[[a, b]]), kji(short_ends))
    return best


def axial_diameters(mask: np.ndarray, geometry: VolumeGeometry) -> tuple[float, float]:
    """Longest axial diameter and its perpendicular short axis, in mm."""
    axes = axial_axes(mask, geometry)
    return axes.longest_mm, axes.short_mm


def _one_kind(values: np.ndarray) -> float:
    """The cut of a nodule that is all one kind: every voxel solid or none, by its mean HU."""
    return -np.inf if values.mean() >= SOLID_HU else np.inf


def _solid_cut_hu(values: np.ndarray) -> float:
    """The HU from which a voxel is solid: halfway between the two GK centres (in one
    dimension GK's norm A = (det F)^(1/n) F⁻¹ is 1, so maximum membership means the nearer
    centre), or ∓inf when the nodule is all one kind (module docstring)."""
    if len(values) < MIN_SPLIT_VOXELS or np.ptp(values) < MIN_SEPARATION_HU:
        return _one_kind(values)
    fit = values
    if len(values) > MAX_SPLIT_FIT_VOXELS:
        rng = np.random.default_rng(0)
        fit = values[np.sort(rng.choice(len(values), MAX_SPLIT_FIT_VOXELS, replace=False))]
    # gamma as in the tumour stage: keeps each cluster's variance positive when its voxels are equal
    centers = gustafson_kessel(fit[:, None], n_clusters=2, tol=1e-4, gamma=0.1).centers[:, 0]
    light, dense = sorted(float(c) for c in centers)
    if dense - light < MIN_SEPARATION_HU or not light < SOLID_HU <= dense:
        return _one_kind(values)
    return (light + dense) / 2.0


def _solid_split(mask: np.ndarray, hu: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`solid_component` on arrays already cropped to the tumour (no checks)."""
    values = np.clip(hu.astype(np.float64), -1000.0, 400.0)  # calcification does not pull the centre
    interior = ndi.binary_erosion(mask, _SIX_CONNECTED)  # without the partial-volume boundary
    if interior.sum() >= MIN_SPLIT_VOXELS:
        counted, cut = interior, _solid_cut_hu(values[interior])
    else:  # too small to show two parts inside its rim
        counted, cut = mask, _one_kind(values[mask])
    solid = mask & (values >= cut)
    return solid, float(solid[counted].sum()) / float(counted.sum())


def solid_component(mask: np.ndarray, hu: np.ndarray, geometry: VolumeGeometry) -> tuple[np.ndarray, float]:
    """The tumour's solid component and its share of the tumour's volume (module docstring).

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    hu : ndarray
        The CT in Hounsfield units, of ``mask``'s shape.
    geometry : VolumeGeometry
        The grid of both.

    Returns
    -------
    (ndarray, float)
        The solid voxels (bool, ``mask``'s shape) and their share of the tumour's voxels
        without its boundary voxels, 0..1. With fewer than 30 voxels inside the boundary the
        tumour is all one kind (all solid or none, by its mean HU).

    Raises
    ------
    ValueError
        If ``mask`` is not on the geometry's grid, ``hu`` not of its shape, or ``mask`` empty.

    Examples
    --------
    >>> g = VolumeGeometry((20, 20, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[2:18, 2:18, 2:18] = True
    >>> hu = np.where(mask, -650.0, -850.0)
    >>> hu[7:13, 7:13, 7:13] = 30.0  # a solid core in ground glass
    >>> solid, fraction = solid_component(mask, hu, g)
    >>> int(solid.sum()), round(fraction, 3)  # 6³ of the 14³ inside voxels
    (216, 0.079)
    """
    check_volume(mask, geometry, "mask")
    check_same_shape(hu, mask.shape, "hu")
    box = _bounding_box(mask)
    if box is None:
        raise ValueError("mask is empty: no tumour to split")
    part, fraction = _solid_split(mask[box], hu[box])
    solid = np.zeros(mask.shape, dtype=bool)
    solid[box] = part
    return solid, fraction


def _largest_part(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3)))
    if n <= 1:
        return mask
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def _lung_rads_fields(mask: np.ndarray, hu: np.ndarray, geometry: VolumeGeometry, longest: float,
                      short: float) -> dict:
    """Mean diameter, solid share and size, type and baseline Lung-RADS suggestion (cropped arrays)."""
    solid, fraction = _solid_split(mask, hu)
    solid_mean = mean_diameter_mm(*axial_diameters(_largest_part(solid), geometry)) if solid.any() else 0.0
    mean = mean_diameter_mm(longest, short)
    kind = lungrads.nodule_type(fraction)
    suggestion = lungrads.lung_rads_category(kind, mean, solid_mean, status="baseline")
    return {"mean_diameter_mm": mean, "solid_fraction": fraction, "solid_mean_diameter_mm": solid_mean,
            "nodule_type": kind, "lung_rads": suggestion.as_dict()}


def measure_tumor(mask: np.ndarray, hu: np.ndarray, geometry: VolumeGeometry, seed: Seed | None) -> TumorMeasurement:
    """Volume, diameters, sphericity, HU statistics and centroid of one tumour (module docstring).

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    hu : ndarray
        The CT in Hounsfield units, of ``mask``'s shape.
    geometry : VolumeGeometry
        The grid of both; its shape (k, j, i) is ``mask.shape``.
    seed : Seed or None
        The tumour's seed, recorded with the measurements.

    Returns
    -------
    TumorMeasurement
        Volume (mL), voxels, longest axial diameter and short axis, maximum 3D diameter (mm),
        sphericity, mean and standard deviation of the HU, centroid (LPS mm) and the seed; the
        Lung-RADS mean diameter (mm), solid share, solid mean diameter (mm), nodule type and
        the baseline Lung-RADS v2022 suggestion (category, rule, label; not for clinical use).

    Raises
    ------
    ValueError
        If ``mask`` is not on the geometry's grid, ``hu`` is not of its shape, or ``mask`` is empty.

    Examples
    --------
    >>> g = VolumeGeometry((10, 10, 10), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[3:6, 2:8, 2:8] = True  # 6 x 6 mm in-plane, three slices of 2 mm
    >>> m = measure_tumor(mask, np.where(mask, 30.0, -800.0), g, None)
    >>> m.voxels, round(m.volume_ml, 3), m.mean_hu, round(m.longest_axial_diameter_mm, 1)
    (108, 0.216, 30.0, 7.8)
    """
    check_volume(mask, geometry, "mask")
    check_same_shape(hu, mask.shape, "hu")
    if not np.any(mask):
        raise ValueError("mask is empty: no tumour to measure")
    spacing_kji = tuple(geometry.spacing[::-1])
    box = _bounding_box(mask)  # every measure below is translation-invariant, except the centroid
    offset = np.array([b.start for b in box])
    mask, hu = mask[box], hu[box]
    voxels = int(mask.sum())
    padded = np.pad(mask.astype(np.float32), 1)
    verts, faces, _, _ = measure.marching_cubes(padded, 0.5, spacing=spacing_kji)
    area = measure.mesh_surface_area(verts, faces)
    volume_mm3 = voxels * float(np.prod(geometry.spacing))
    sphericity = float(np.pi ** (1 / 3) * (6 * volume_mm3) ** (2 / 3) / area) if area > 0 else 0.0
    axes = axial_axes(mask, geometry)
    longest, short = axes.longest_mm, axes.short_mm
    values = hu[mask].astype(np.float64)
    centroid = geometry.kji_to_lps(np.array(ndi.center_of_mass(mask)) + offset)

    def lps(ends_kji: np.ndarray) -> list[list[float]]:
        return [[float(v) for v in geometry.kji_to_lps(end + offset)] for end in ends_kji]

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
        **_lung_rads_fields(mask, hu, geometry, longest, short),
        longest_axis_lps=lps(axes.longest_kji),
        short_axis_lps=lps(axes.short_kji),
    )
