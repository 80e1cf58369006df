"""Tumours by fuzzy clustering around a seed (seed paper 000, section III.B).

For each ``tumor`` seed:

0. a seed clicked just beside a tumour (in aerated lung or its partial-volume halo, within
   ``near_miss_mm`` of dense tissue) moves to the thickest dense blob it touches, within
   ``blob_search_mm``: the nodule rather than the vessel beside it. A seed with no dense
   tissue that near is refused: the user meant something else;
1. a neighbourhood around the seed (``roi_radius_mm``, grown while the tumour reaches its
   edge), inside the lung segments when there are lungs (a seed just outside them, on a
   juxta-pleural tumour that indents the lung contour, uses each lung's per-slice convex
   hull, which takes the indentation back), else the whole neighbourhood (``--lungs none``);
2. per-voxel features: HU, and the local mean and standard deviation in a small window
   (texture), standardised;
3. clustering of the neighbourhood alone, in 3D or slice by slice as in the paper, with GK,
   FCM or K-means (:mod:`gk_clustering`); clusters whose centre is denser than
   ``tumor_cluster_min_hu`` are tumour-like, so ground-glass and solid parts both count while
   a parenchyma split by its texture does not: clusters are formed in the seed's
   neighbourhood and only their centres are compared with a level, not every voxel;
4. the tumour is the connected region of voxels whose tumour-like membership exceeds that
   of each other cluster (maximum membership, the tumour-like clusters taken as one class)
   that holds the seed (or lies nearest to it); its partial-volume rim is split at half
   maximum, halfway between the lung's HU and the tissue's just inside; vessels as thick as
   the tumour are dropped as lobes whose centre is a tube (:mod:`tubular_lobes`), thinner
   vessels touching it are cut off by an opening scaled to the tumour, and what the opening
   shaved off the tumour's own border (lobulations) is given back where a finer opening keeps it;
5. holes are filled.

The tumour-like membership over the neighbourhood is kept as a "heterogeneity map".
Without a seed, :func:`tumor_candidates` ranks dense, compact, non-tubular blobs inside the
lungs; the best one is then segmented as if it had been seeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_index, check_same_shape, check_volume
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.tumor.gk import CLUSTERING, predict_memberships
from LungTumorReconLib.tumor.labels import nearest_label
from LungTumorReconLib.tumor.tubular_lobes import tubular_lobes

OPENING_FRACTION = 0.6  # of the inscribed radius: structures thinner than 1.2·R are cut off
# what the opening shaved off is given back where an opening this much finer keeps it:
# lobulations and the tumour's rounded rim return, vessels thinner than that stay off
GIVE_BACK_FRACTION = 0.7


@dataclass(frozen=True)
class TumorClusterParameters:
    n_clusters: int = 3  # aerated lung / ground glass / solid (two where the paper's set-up is wanted)
    m: float = 2.0
    tol: float = 1e-4
    max_iter: int = 100
    seed: int = 0
    roi_radius_mm: float = 30.0
    max_roi_radius_mm: float = 80.0
    texture_window_mm: float = 2.0
    # clusters whose centre is denser than this are tumour-like (ground glass from about
    # −650 HU up, solid); lighter ones are aerated lung, however the texture splits it
    tumor_cluster_min_hu: float = -650.0
    seed_search_mm: float = 10.0
    max_fit_voxels: int = 30000
    seed_cluster: bool = True
    seed_radius_mm: float = 2.0
    per_slice: bool = False  # cluster each axial slice of the neighbourhood on its own
    # GK only: blend each cluster covariance with the data's (Babuška et al. 2002); HU and its
    # local mean are strongly correlated, and without it GK's clusters stretch along that
    # diagonal and split the lung by texture instead of density
    gk_gamma: float = 0.1
    # the tumour's edge where the HU crosses halfway between the lung and the tumour tissue
    # just inside (the half-maximum rule for a blurred edge): the partial-volume rim, which a
    # ground-glass cluster would otherwise claim, is split as a reader would split it
    half_maximum_edge: bool = True
    edge_rim_mm: float = 2.0
    # a seed inside less than this much dense tissue is a near miss, moved onto the blob beside it
    near_miss_depth_mm: float = 1.5
    near_miss_mm: float = 3.5  # a near miss is this close to dense tissue, else it is refused
    blob_search_mm: float = 15.0  # the blob's thickest point is sought this far from the click
    # lobes of the grown component (h-maxima of its distance map, this much deeper than their
    # saddle) whose centre is a tube, not a blob, are vessels as thick as the tumour: dropped
    drop_tubular_lobes: bool = True
    lobe_depth_mm: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TumorSegmentation:
    mask: np.ndarray  # (k, j, i) bool, whole volume
    membership: np.ndarray  # (k, j, i) float32, tumour-like membership (0 outside the neighbourhood)
    seed_kji: tuple[int, int, int]


def _box(centre: tuple[int, int, int], radius_mm: float, geometry: VolumeGeometry) -> tuple[slice, ...]:
    spacing = geometry.spacing[::-1]
    return tuple(
        slice(max(0, c - int(np.ceil(radius_mm / s))), min(n, c + int(np.ceil(radius_mm / s)) + 1))
        for c, s, n in zip(centre, spacing, geometry.shape_kji)
    )


def voxel_features(hu: np.ndarray, spacing_kji: tuple[float, float, float], window_mm: float) -> np.ndarray:
    """HU and local mean and std (a box window of about ``window_mm``), shape (..., 3)."""
    x = np.clip(hu.astype(np.float32), -1000.0, 400.0)
    size = [max(1, 2 * int(round(window_mm / 2 / s)) + 1) for s in spacing_kji]
    size[1:] = [max(3, n) for n in size[1:]]  # texture needs at least 3×3 pixels in-plane
    mean = ndi.uniform_filter(x, size=size, mode="nearest")
    sq = ndi.uniform_filter(x * x, size=size, mode="nearest")
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    return np.stack([x, mean, std], axis=-1)


def _cluster(
    features: np.ndarray, method: str, params: TumorClusterParameters, at_seed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Tumour-like membership of each row of ``features`` (the summed membership of the
    clusters denser than ``tumor_cluster_min_hu``), whether it exceeds the membership of each
    other cluster (the row is tumour), and the HU of the lightest cluster's centre (the aerated
    lung around the tumour)."""
    if len(features) < 4 * params.n_clusters:
        dense = features[:, 0] > -500
        return dense.astype(np.float32), dense, -850.0
    z = (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-6)
    fn = CLUSTERING[method]
    extra = {"gamma": params.gk_gamma} if method == "gk" else {}
    # a large neighbourhood is fitted on a fixed random sample (its cluster statistics are
    # those of the whole to well under a HU) and every voxel then gets memberships from the fit
    fit = z
    if len(z) > params.max_fit_voxels:
        rng = np.random.default_rng(params.seed)
        fit = z[np.sort(rng.choice(len(z), params.max_fit_voxels, replace=False))]
    result = fn(fit, params.n_clusters, m=params.m, tol=params.tol, max_iter=params.max_iter, seed=params.seed, **extra)
    memberships = result.memberships if fit is z else predict_memberships(result, z, m=params.m)
    hu_of_center = result.centers[:, 0] * features[:, 0].std() + features[:, 0].mean()
    tumour_like = hu_of_center > params.tumor_cluster_min_hu
    if at_seed is not None and at_seed.any() and params.seed_cluster:
        # the user clicked tumour: the cluster the seed's voxels belong to most is tumour,
        # unless it is the aerated lung itself
        own = int(np.argmax(memberships[:, at_seed].mean(axis=1)))
        if hu_of_center[own] > hu_of_center.min():
            tumour_like[own] = True
    if not tumour_like.any():
        tumour_like = hu_of_center == hu_of_center.max()
    tumour = memberships[tumour_like].sum(axis=0)
    rival = memberships[~tumour_like].max(axis=0) if not tumour_like.all() else np.zeros_like(tumour)
    return tumour.astype(np.float32), tumour > rival, float(hu_of_center.min())


def _half_maximum_edge(
    component: np.ndarray, hu: np.ndarray, background_hu: float, seed, spacing, params: TumorClusterParameters
) -> np.ndarray:
    """Drop rim voxels (within ``edge_rim_mm`` of the outside) whose HU is below halfway between
    the lung (``background_hu``) and the tissue just inside them (the mean HU, in a small
    window, of the nearest voxel deeper than the rim); keep the part holding the seed."""
    depth = ndi.distance_transform_edt(component, sampling=spacing)
    core = depth > params.edge_rim_mm
    if not core.any():  # a small nodule: its deepest voxels are its core
        core = depth >= 0.5 * depth.max()
    inner = np.where(core, hu, 0.0).astype(np.float32)
    size = [3 if s < 3.0 else 1 for s in spacing]
    weight = ndi.uniform_filter(core.astype(np.float32), size=size)
    inner_mean = ndi.uniform_filter(inner, size=size) / np.maximum(weight, 1e-6)
    _, nearest = ndi.distance_transform_edt(~core, sampling=spacing, return_indices=True)
    tissue = inner_mean[tuple(nearest)]
    keep = component & (core | (hu >= 0.5 * (background_hu + tissue)))
    labels, _ = ndi.label(keep)
    lab = nearest_label(labels, seed, spacing, params.seed_search_mm)
    return labels == lab if lab else component


def _ball(radius_mm: float, spacing) -> np.ndarray:  # for the candidates' opening
    r = [max(0, int(np.floor(radius_mm / s))) for s in spacing]
    grid = np.ogrid[tuple(slice(-a, a + 1) for a in r)]
    return sum((g * s / radius_mm) ** 2 for g, s in zip(grid, spacing)) <= 1.0


def _separate_vessels(component: np.ndarray, seed: tuple[int, int, int], spacing) -> np.ndarray:
    """Cut off what is thinner than the tumour: vessels touching it (juxta-vascular), chest
    wall or mediastinum reached through a narrow contact.

    The tumour's own thickness is its inscribed radius R near the seed (the largest distance
    to its border within R of the seed). An opening with a ball of 0.6·R (by distance maps:
    exact and fast at any radius) removes structures thinner than 1.2·R; the part holding the
    seed is kept. The border the opening shaved off it (lobulations, the rim of a lobulated
    tumour) is given back within the ball's radius where a finer opening (0.7× the ball)
    keeps it, so that vessels running along the tumour's surface stay off.
    """
    inside = ndi.distance_transform_edt(component, sampling=spacing)
    near_seed = _distance_from(component.shape, seed, spacing) <= max(inside[seed], 2 * max(spacing))
    r0 = float(inside[near_seed].max())
    radius = max(OPENING_FRACTION * r0, min(spacing))
    eroded = inside > radius
    if not eroded.any():
        return component
    opened = ndi.distance_transform_edt(~eroded, sampling=spacing) <= radius
    labels, _ = ndi.label(opened & component)
    lab = nearest_label(labels, seed, spacing, reach_mm=3 * r0 + max(spacing))
    if lab == 0:
        return component
    core = labels == lab
    from_core = ndi.distance_transform_edt(~core, sampling=spacing)
    fine = max(GIVE_BACK_FRACTION * radius, min(spacing))
    finely_opened = ndi.distance_transform_edt(~(inside > fine), sampling=spacing) <= fine
    near = core | ((from_core <= radius) & finely_opened)
    labels, _ = ndi.label(component & near)
    return labels == labels[tuple(np.argwhere(core)[0])]


def _without_tubular_lobes(component, hu, seed, spacing, params: TumorClusterParameters) -> np.ndarray:
    """The component less its tubular lobes (:mod:`tubular_lobes`), the part holding the seed."""
    kept = component & ~tubular_lobes(component, hu, seed, spacing, params.lobe_depth_mm)
    labels, _ = ndi.label(kept)
    lab = nearest_label(labels, seed, spacing, params.seed_search_mm)
    return labels == lab if lab else component


def _distance_from(shape, centre, spacing) -> np.ndarray:
    """Each voxel's distance (mm) from the voxel ``centre``."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))


def _check_seeded_arguments(hu: np.ndarray, geometry: VolumeGeometry, seed_kji, lungs: np.ndarray | None,
                            method: str) -> None:
    check_volume(hu, geometry)
    check_index(seed_kji, hu.shape, "seed_kji")
    if lungs is not None:
        check_same_shape(lungs, hu.shape, "lungs")
    if method not in CLUSTERING:
        raise ValueError(f"unknown clustering method {method!r}; one of {', '.join(CLUSTERING)}")


def _domain(lungs: np.ndarray | None, lung_labels: np.ndarray | None, seed_kji, box) -> np.ndarray:
    """Where the neighbourhood ``box`` is clustered: the lungs (with their per-slice hulls for a
    seed outside them), or the whole box without lungs."""
    if lungs is not None and lungs[seed_kji]:
        return lungs[box]
    if lungs is not None:
        return lungs[box] | hull_per_lung_and_slice(lung_labels, box)
    return np.ones(tuple(b.stop - b.start for b in box), dtype=bool)


def _cluster_domain(feats: np.ndarray, domain: np.ndarray, local_seed, spacing, method: str,
                    params: TumorClusterParameters) -> tuple[np.ndarray, np.ndarray, float]:
    """Tumour-like membership and tumour voxels over ``domain`` (in 3D, or per axial slice), and
    the aerated lung's HU (see :func:`_cluster`)."""
    membership = np.zeros(domain.shape, dtype=np.float32)
    dense = np.zeros(domain.shape, dtype=bool)
    if params.per_slice:
        backgrounds = []
        for k in range(domain.shape[0]):
            if domain[k].sum() >= 4 * params.n_clusters:
                membership[k][domain[k]], dense[k][domain[k]], b = _cluster(feats[k][domain[k]], method, params)
                backgrounds.append(b)
        background_hu = float(np.median(backgrounds)) if backgrounds else -850.0
    else:
        near_seed = _distance_from(domain.shape, local_seed, spacing) <= params.seed_radius_mm
        membership[domain], dense[domain], background_hu = _cluster(feats[domain], method, params, near_seed[domain])
    return membership, dense, background_hu


def _refine(component: np.ndarray, hu: np.ndarray, background_hu: float, seed, spacing,
            params: TumorClusterParameters) -> np.ndarray:
    """Step 4 on the grown component: its rim split at half maximum, its tubular lobes dropped,
    thinner vessels cut off."""
    if component.any() and params.half_maximum_edge:
        component = _half_maximum_edge(component, hu, background_hu, seed, spacing, params)
    if component.any() and params.drop_tubular_lobes:
        component = _without_tubular_lobes(component, hu, seed, spacing, params)
    if component.any():
        component = _separate_vessels(component, seed, spacing)
    return component


def segment_tumor_at_seed(
    hu: np.ndarray, geometry: VolumeGeometry, seed_kji: tuple[int, int, int], lungs: np.ndarray | None = None,
    method: str = "gk", params: TumorClusterParameters | None = None,
) -> TumorSegmentation:
    """The tumour holding (or nearest to) ``seed_kji`` by clustering its neighbourhood (steps 0-5).

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    seed_kji : tuple of int
        The user's click, a voxel index (k, j, i) inside the volume.
    lungs : ndarray, optional
        Both lungs, bool of ``hu``'s shape; None (or empty) clusters the whole neighbourhood.
    method : str, optional
        ``"gk"`` (Gustafson–Kessel), ``"fcm"`` (fuzzy c-means) or ``"kmeans"``.
    params : TumorClusterParameters, optional
        ``TumorClusterParameters()`` by default.

    Returns
    -------
    TumorSegmentation
        The mask (bool, (k, j, i); empty when there is no tumour nearby), the tumour-like
        membership (float32) and the seed used.

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, ``lungs`` not of its shape, the seed outside it
        or ``method`` unknown.
    InputError
        If the seed lies in aerated lung with no dense tissue near it.

    Examples
    --------
    >>> g = VolumeGeometry(size=(24, 24, 16), spacing=(1.5, 1.5, 1.5), origin=(0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> ball = (k - 8) ** 2 + (j - 12) ** 2 + (i - 12) ** 2 <= 16  # a 6 mm nodule in lung
    >>> result = segment_tumor_at_seed(np.where(ball, 40.0, -850.0), g, (8, 12, 12))
    >>> bool(result.mask[8, 12, 12]), bool((result.mask & ~ball).any())
    (True, False)
    """
    _check_seeded_arguments(hu, geometry, seed_kji, lungs, method)
    params = params or TumorClusterParameters()
    spacing = tuple(geometry.spacing[::-1])
    radius = params.roi_radius_mm
    use_lungs = lungs is not None and lungs.any() and _near_lungs(lungs, seed_kji, spacing, params.seed_search_mm)
    # inside the lungs only the lungs' dense tissue is a blob to move to (not the chest wall);
    # a seed outside them was clicked on whatever is there
    seed_kji = snap_near_miss(hu, geometry, seed_kji, lungs if use_lungs and lungs[seed_kji] else None, params)
    # a seed just outside the lung outline (a juxta-pleural tumour indenting it): the lungs'
    # per-slice hulls, labelled once for every round of the growing neighbourhood
    lung_labels = ndi.label(lungs)[0] if use_lungs and not lungs[seed_kji] else None
    while True:
        box = _box(seed_kji, radius, geometry)
        local_seed = tuple(c - b.start for c, b in zip(seed_kji, box))
        domain = _domain(lungs if use_lungs else None, lung_labels, seed_kji, box)
        feats = voxel_features(hu[box], spacing, params.texture_window_mm)
        membership, dense, background_hu = _cluster_domain(feats, domain, local_seed, spacing, method, params)
        labels, _ = ndi.label(dense)
        lab = nearest_label(labels, local_seed, spacing, params.seed_search_mm)
        component = labels == lab if lab else np.zeros_like(dense)
        component = _refine(component, hu[box], background_hu, local_seed, spacing, params)
        # a tumour (vessels cut off) that reaches the neighbourhood's edge needs a larger one
        touches_edge = component.any() and _touches_box_edge(component, box, geometry.shape_kji)
        if not touches_edge or radius >= params.max_roi_radius_mm:
            break
        radius = min(1.5 * radius, params.max_roi_radius_mm)
    if component.any():
        component = ndi.binary_fill_holes(component)
    mask = np.zeros(hu.shape, dtype=bool)
    mask[box] = component
    full_membership = np.zeros(hu.shape, dtype=np.float32)
    full_membership[box] = membership
    return TumorSegmentation(mask=mask, membership=full_membership, seed_kji=seed_kji)


def snap_near_miss(
    hu: np.ndarray, geometry: VolumeGeometry, seed_kji: tuple[int, int, int], lungs: np.ndarray | None,
    params: TumorClusterParameters,
) -> tuple[int, int, int]:
    """Where a click meant for a tumour should start (step 0 of the module's docstring).

    Dense tissue is the in-plane 3×3 mean HU at or above ``tumor_cluster_min_hu`` (ground glass
    included), inside the lungs when there are lungs (the chest wall is not a blob to snap to).
    A seed lying at least ``near_miss_depth_mm`` inside dense tissue stays where it is.

    Raises
    ------
    InputError
        When no dense tissue lies within ``near_miss_mm`` of the seed.
    """
    spacing = tuple(geometry.spacing[::-1])
    box = _box(seed_kji, params.blob_search_mm + params.near_miss_mm, geometry)
    local = tuple(c - b.start for c, b in zip(seed_kji, box))
    mean = ndi.uniform_filter(np.clip(hu[box].astype(np.float32), -1000, 400), size=(1, 3, 3), mode="nearest")
    dense = mean >= params.tumor_cluster_min_hu
    if lungs is not None:
        dense &= lungs[box]
    depth = ndi.distance_transform_edt(dense, sampling=spacing)
    if depth[local] >= params.near_miss_depth_mm:
        return seed_kji
    labels, _ = ndi.label(dense)
    distance = _distance_from(dense.shape, local, spacing)
    touched = np.unique(labels[(distance <= params.near_miss_mm) & dense])
    if len(touched) == 0:
        raise InputError(f"the tumor seed lies in aerated lung with no dense tissue within {params.near_miss_mm:g} mm:"
                         " place it on the tumour")
    reach = np.isin(labels, touched) & (distance <= params.blob_search_mm)
    best = np.unravel_index(np.argmax(np.where(reach, depth, -1.0)), depth.shape)
    return tuple(int(c + b.start) for c, b in zip(best, box))


def lung_cavity(hu: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """Without lung segments (``--lungs none``): per lung and axial slice, the convex hull of
    the lung's air (:func:`lung_air.lung_air`). A tumour that fills much of a lung, against the
    chest wall or mediastinum, stays inside this cavity while the walls, which have its
    density, mostly do not."""
    from LungTumorReconLib.lungs.air import LungAirParameters, largest_components, lung_air, split_in_two

    params = LungAirParameters()
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    lungs = largest_components(lung_air(hu, geometry, params), geometry, params)
    if len(lungs) == 1:
        lungs = split_in_two(lungs[0], spacing_kji, geometry, params) or lungs
    labels = np.zeros(hu.shape, dtype=np.int32)
    for index, lung in enumerate(lungs, start=1):
        labels[lung] = index
    return hull_per_lung_and_slice(labels)


def hull_per_lung_and_slice(lungs: np.ndarray, box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Per lung (3D connected component, or label of an int array) and axial slice, the
    convex hull of its in-plane section, cropped to ``box``. The costal side of a lung is
    convex, so its hull takes back a tumour that indents it (juxta-pleural); one hull per
    lung keeps the mediastinum between the two lungs out."""
    from skimage.morphology import convex_hull_image

    labels = lungs if lungs.dtype != bool else ndi.label(lungs)[0]
    box = box or tuple(slice(0, n) for n in lungs.shape)
    out = np.zeros(tuple(b.stop - b.start for b in box), dtype=bool)
    for k in range(box[0].start, box[0].stop):
        for index in np.unique(labels[k][box[1:]]):
            section = labels[k] == index
            if index and section.sum() >= 3:
                out[k - box[0].start] |= convex_hull_image(section)[box[1:]]
    return out


def _near_lungs(lungs: np.ndarray, seed, spacing, reach_mm: float) -> bool:
    if lungs[seed]:
        return True
    box = tuple(slice(max(0, c - int(reach_mm / s) - 1), c + int(reach_mm / s) + 2) for c, s in zip(seed, spacing))
    return bool(lungs[box].any())


def _touches_box_edge(component: np.ndarray, box, shape) -> bool:
    """The component reaches a face of the box that is not the volume's own border."""
    for axis, b in enumerate(box):
        first = np.take(component, 0, axis=axis).any() and b.start > 0
        last = np.take(component, -1, axis=axis).any() and b.stop < shape[axis]
        if first or last:
            return True
    return False


@dataclass
class Candidate:
    centroid_kji: tuple[int, int, int]
    volume_ml: float
    sphericity_proxy: float  # volume / volume of the bounding sphere of its extent, 0–1
    elongation: float  # ratio of the principal axes' spreads (1 = round, large = tubular)
    score: float


def tumor_candidates(
    hu: np.ndarray, geometry: VolumeGeometry, lungs: np.ndarray, max_candidates: int = 10
) -> list[Candidate]:
    """Dense (> −500 HU), compact, non-tubular blobs inside the lungs, best first.

    Vessels are removed by an opening (2.5 mm ball) before the blobs are measured; the score
    favours size (log volume within 0.03–200 mL), roundness and low elongation.

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    lungs : ndarray
        Both lungs, bool of ``hu``'s shape: where candidates are sought.
    max_candidates : int, optional
        Return at most this many, >= 1.

    Returns
    -------
    list of Candidate
        Centroid (a voxel of the blob), volume, roundness, elongation and score, best first.

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, ``lungs`` is not of its shape, or
        ``max_candidates`` < 1.

    Examples
    --------
    >>> g = VolumeGeometry(size=(24, 24, 16), spacing=(1.5, 1.5, 1.5), origin=(0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> ball = (k - 8) ** 2 + (j - 12) ** 2 + (i - 12) ** 2 <= 16  # a 6 mm nodule in lung
    >>> found = tumor_candidates(np.where(ball, 40.0, -850.0), g, np.ones(ball.shape, bool))
    >>> [c.centroid_kji for c in found], round(found[0].volume_ml, 2)
    ([(8, 12, 12)], 0.85)
    """
    check_volume(hu, geometry)
    check_same_shape(lungs, hu.shape, "lungs")
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be at least 1, got {max_candidates}")
    spacing = tuple(geometry.spacing[::-1])
    dense = (hu > -500) & lungs
    dense = ndi.binary_opening(dense, structure=_ball(2.5, spacing))
    labels, n = ndi.label(dense)
    if n == 0:
        return []
    voxel_ml = geometry.voxel_volume_ml
    out = []
    for index, sl in enumerate(ndi.find_objects(labels), start=1):
        blob = labels[sl] == index
        volume_ml = float(blob.sum() * voxel_ml)
        if not 0.03 <= volume_ml <= 200.0 or blob.sum() < 4:  # a shape needs a few voxels
            continue
        pts = np.argwhere(blob) * np.asarray(spacing)
        centred = pts - pts.mean(axis=0)
        spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(centred.T) + 1e-6 * np.eye(3)), 1e-6))
        elongation = float(spread[-1] / spread[0])
        extent = float(np.sqrt((centred**2).sum(axis=1)).max()) + max(spacing) / 2
        roundness = float(min(1.0, blob.sum() * np.prod(spacing) / (4 / 3 * np.pi * extent**3)))
        score = float(np.log10(volume_ml / 0.03)) * roundness / elongation
        centroid = tuple(int(round(c)) for c in np.argwhere(blob).mean(axis=0) + [s.start for s in sl])
        if not labels[centroid] == index:  # a crescent: take its deepest voxel instead
            depth = ndi.distance_transform_edt(blob)
            centroid = tuple(int(v) for v in np.unravel_index(np.argmax(depth), blob.shape) + np.array([s.start for s in sl]))
        out.append(Candidate(centroid, volume_ml, roundness, elongation, score))
    out.sort(key=lambda c: c.score, reverse=True)
    return out[:max_candidates]
