"""``--lungs snake``: the seed paper's lung stage (000, section III.A).

A seeded point snake, its energy minimised by the Viterbi algorithm (:mod:`snake_viterbi`),
propagated slice to slice:

1. air inside the body with the airways removed (:func:`lung_air.lung_air`);
2. start: the axial slice of each lung's seed (a markups point labelled ``right lung`` /
   ``left lung``); without a seed, the slice where that lung's air (found as the threshold
   baseline finds it) is largest;
3. on the start slice the lung is the air island under the seed (or the lung's islands of
   the automatic start); the islands are closed together (``closing_radius_mm``) and filled,
   and each outline is an initial contour that the Viterbi snake refines;
4. the lung found on one slice initialises the next: the islands of the next slice that
   overlap it (a lung may be several islands, near the hilum or the base) give the next
   contours, which the snake refines again; propagation runs up and down from the start
   slice and stops by itself where no island continues the lung (apex, base);
5. the two lungs keep to their own air: a watershed of the air's distance map from the two
   start regions splits lungs that touch (anterior junction); where both contours claim a
   voxel it goes to the lung whose air is nearer;
6. the indentations a tumour against the pleura makes are bridged (:mod:`lung_border`).

:func:`repropagate_lung` re-runs step 4 for one lung from a corrected slice, leaving the
other lung exactly as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage import measure
from skimage.segmentation import watershed

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape, check_volume
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, Seed
from LungTumorReconLib.lungs.air import (
    IN_PLANE_2X,
    LungAirParameters,
    block_expand,
    block_reduce,
    bounding_box,
    close_2d,
    fill_small_holes,
    largest_components,
    lung_air,
    name_by_side,
    split_in_two,
)
from LungTumorReconLib.lungs.border import bridge_pleural_indentations
from LungTumorReconLib.lungs.snake_viterbi import SnakeParameters, slice_energy, viterbi_snake

LUNGS = (RIGHT_LUNG, LEFT_LUNG)


@dataclass(frozen=True)
class SnakeLungParameters:
    air: LungAirParameters = field(default_factory=LungAirParameters)
    snake: SnakeParameters = field(default_factory=SnakeParameters)
    min_island_mm2: float = 25.0  # smaller air islands are noise, not lung
    follow_mm: float = 3.0  # an island continues the lung if it overlaps it grown by this much
    seed_search_mm: float = 10.0  # a seed on a vessel takes the nearest air island this close

    def as_dict(self) -> dict:
        rest = {k: v for k, v in asdict(self).items() if k not in ("air", "snake")}
        return {"air": self.air.as_dict(), "snake": self.snake.as_dict(), **rest}


class _SliceWork:
    """What every slice of both lungs shares: parameters, spacing, energy images (computed once)."""

    def __init__(self, hu: np.ndarray, geometry: VolumeGeometry, params: SnakeLungParameters) -> None:
        self.hu = hu
        self.spacing = (geometry.spacing[1], geometry.spacing[0])  # (row = j, col = i)
        self.params = params
        self.min_pixels = params.min_island_mm2 / (geometry.spacing[0] * geometry.spacing[1])
        self._energy: dict[int, object] = {}

    def energy(self, k: int):
        if k not in self._energy:
            self._energy[k] = slice_energy(self.hu[k], self.spacing, self.params.snake)
        return self._energy[k]


def _snake_region(islands: np.ndarray, work: _SliceWork, k: int) -> np.ndarray:
    """A lung's islands on one slice → closed together and filled → each outline refined by
    the Viterbi snake → filled polygons.

    The islands are closed together so that a tumour or vessel lying between two islands
    of the same lung (or against the pleura) ends up inside the lung.
    """
    params = work.params
    out = np.zeros_like(islands)
    reach_mm = max(params.air.closing_radius_mm, max(params.snake.search_radii_mm))
    margin = int(np.ceil(reach_mm / min(work.spacing))) + 3
    box = bounding_box(islands, margin=(margin, margin))
    if box is None:
        return out
    sub = islands[box]
    closed = close_2d(sub, work.spacing, params.air.closing_radius_mm)
    region = fill_small_holes(closed | sub, params.air.max_hole_mm2 / (work.spacing[0] * work.spacing[1]))
    energy = work.energy(k)
    offset = np.array([box[0].start, box[1].start])
    filled = np.zeros(sub.shape, dtype=bool)
    for contour in measure.find_contours(np.pad(region, 1).astype(np.float32), 0.5):
        if len(contour) < 8:
            continue
        refined = viterbi_snake(contour - 1 + offset, energy, params.snake)
        filled ^= fill_polygon(refined - offset, sub.shape)  # even-odd: a contour inside another cancels
    out[box] = filled | sub  # the snake never loses the islands' own air
    return out


def fill_polygon(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside the closed polygon of (row, col) ``points`` (even-odd rule).

    A vectorised scanline fill: every edge crossing a pixel row toggles "inside" from the
    first pixel centre right of the crossing; a running parity then fills the row.
    """
    r, c = points[:, 0], points[:, 1]
    r2, c2 = np.roll(r, -1), np.roll(c, -1)
    lo = max(0, int(np.ceil(r.min())))
    hi = min(shape[0] - 1, int(np.floor(r.max())))
    out = np.zeros(shape, dtype=bool)
    if hi < lo:
        return out
    y = np.arange(lo, hi + 1, dtype=float)[:, None]
    crosses = ((r <= y) & (r2 > y)) | ((r2 <= y) & (r > y))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = c + (y - r) * (c2 - c) / (r2 - r)
    rows, edges = np.nonzero(crosses)
    cols = np.clip(np.ceil(x[rows, edges]).astype(int), 0, shape[1])
    toggles = np.zeros((hi - lo + 1, shape[1] + 1), dtype=np.int32)
    np.add.at(toggles, (rows, cols), 1)
    out[lo : hi + 1] = (np.cumsum(toggles, axis=1)[:, : shape[1]] % 2).astype(bool)
    return out


def _islands_over(air_slice: np.ndarray, touch: np.ndarray, min_pixels: float) -> np.ndarray:
    """The air islands that touch ``touch`` and are not specks."""
    labels, n = ndi.label(air_slice)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    hits = [lab for lab in np.unique(labels[touch & (labels > 0)]) if areas[lab] >= min_pixels]
    return np.isin(labels, hits) if hits else np.zeros_like(air_slice)


def _continue(air_slice: np.ndarray, previous: np.ndarray, work: _SliceWork, k: int) -> np.ndarray:
    """The lung on slice k: the islands that overlap the previous slice's lung, snaked."""
    margin = tuple(int(np.ceil(work.params.follow_mm / s)) + 1 for s in work.spacing)
    box = bounding_box(previous, margin=margin)
    grown = np.zeros_like(previous)
    grown[box] = ndi.distance_transform_edt(~previous[box], sampling=work.spacing) <= work.params.follow_mm
    islands = _islands_over(air_slice, grown, work.min_pixels)
    return _snake_region(islands, work, k) if islands.any() else islands


def _propagate(air: np.ndarray, start_k: int, start: np.ndarray, work: _SliceWork) -> np.ndarray:
    """Carry one lung from its start slice up and down until no island continues it.

    ``air`` holds only this lung's share of the air; the contours may enclose non-air
    (vessels, tumours) within the lung.
    """
    lung = np.zeros(air.shape, dtype=bool)
    lung[start_k] = start
    for step in (1, -1):
        previous = lung[start_k]
        k = start_k + step
        while 0 <= k < air.shape[0] and previous.any():
            current = _continue(air[k], previous, work, k)
            if current.sum() < work.min_pixels:
                break
            lung[k] = current
            previous = current
            k += step
    return lung


def _start_region(air_slice: np.ndarray, seed_ji: tuple[int, int], work: _SliceWork, k: int) -> np.ndarray:
    labels, _ = ndi.label(air_slice)
    lab = labels[seed_ji]
    if lab == 0:  # the seed is on a vessel or a wall: take the nearest island within reach
        distance, (jj, ii) = ndi.distance_transform_edt(labels == 0, sampling=work.spacing, return_indices=True)
        if distance[seed_ji] > work.params.seed_search_mm:
            return np.zeros_like(air_slice)
        lab = labels[jj[seed_ji], ii[seed_ji]]
    return _snake_region(labels == lab, work, k)


def _territories(air: np.ndarray, starts: dict[str, np.ndarray], geometry: VolumeGeometry) -> dict[str, np.ndarray]:
    """Each lung's share of the air: its own 3D components, split by watershed where shared."""
    labels, _ = ndi.label(air)
    owned = {name: set(np.unique(labels[mask & (labels > 0)]).tolist()) for name, mask in starts.items()}
    territory = {name: np.isin(labels, list(ids)) for name, ids in owned.items()}
    names = list(starts)
    if len(names) == 2 and owned[names[0]] & owned[names[1]]:
        shared = np.isin(labels, list(owned[names[0]] & owned[names[1]]))
        # watershed on a 2× coarser in-plane grid: the same split for a quarter of the work;
        # a coarse voxel is in when any of its 2×2 fine voxels is, so every fine voxel gets a side
        sub = block_reduce(shared, IN_PLANE_2X, np.any)
        spacing = np.asarray(geometry.spacing[::-1]) * np.array([1, 2, 2])
        box = bounding_box(sub, margin=(1, 1, 1))
        distance = np.zeros(sub.shape, dtype=np.float32)
        distance[box] = ndi.distance_transform_edt(sub[box], sampling=spacing)
        markers = np.zeros(sub.shape, dtype=np.int32)
        for index, name in enumerate(names, start=1):
            markers[block_reduce(starts[name], IN_PLANE_2X, np.any) & sub] = index
        split = watershed(-distance, markers, mask=sub)
        full = block_expand(split, IN_PLANE_2X, air.shape)
        for index, name in enumerate(names, start=1):
            territory[name] = (territory[name] & ~shared) | (shared & (full == index))
    return territory


def segment_lungs_snake(
    hu: np.ndarray,
    geometry: VolumeGeometry,
    seeds: list[Seed] | None = None,
    params: SnakeLungParameters | None = None,
) -> dict[str, np.ndarray]:
    """The lungs by the seeded Viterbi snake, propagated slice to slice (the module's steps 1-6).

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    seeds : list of Seed, optional
        Markups points; those labelled ``right lung`` / ``left lung`` give their lung's start
        slice and island. A lung without a seed starts where its air is largest.
    params : SnakeLungParameters, optional
        Air, snake and propagation parameters; ``SnakeLungParameters()`` by default.

    Returns
    -------
    dict of str to ndarray
        ``{"right lung": mask, "left lung": mask}``, bool (k, j, i); lungs not found are omitted.

    Raises
    ------
    ValueError
        If ``hu`` is not 3D, its shape is not the geometry's, or the spacing is not positive.

    Examples
    --------
    >>> hu = np.full((8, 32, 48), -1000.0)  # air around the body
    >>> hu[:, 2:30, 2:46] = 40.0  # soft tissue
    >>> hu[1:7, 8:24, 6:20] = hu[1:7, 8:24, 28:42] = -850.0  # two lungs of 6 x 16 x 14 voxels
    >>> g = VolumeGeometry(size=(48, 32, 8), spacing=(5.0, 5.0, 5.0), origin=(-120.0, -80.0, 0.0))
    >>> lungs = segment_lungs_snake(hu, g)
    >>> sorted(lungs), int(lungs["right lung"].sum())
    (['left lung', 'right lung'], 1344)
    """
    check_volume(hu, geometry)
    params = params or SnakeLungParameters()
    air = lung_air(hu, geometry, params.air)
    work = _SliceWork(hu, geometry, params)

    starts: dict[str, tuple[int, np.ndarray]] = {}
    for seed in seeds or []:
        if seed.label in LUNGS and seed.label not in starts:
            k, j, i = geometry.nearest_kji(np.asarray(seed.lps))
            region = _start_region(air[k], (j, i), work, k)
            if region.any():
                starts[seed.label] = (k, region)
    markers: dict[str, np.ndarray] = {}
    if any(name not in starts for name in LUNGS):
        for name, (k, region, whole) in _automatic_starts(air, geometry, work).items():
            if name not in starts:
                starts[name] = (k, region)
                markers[name] = whole  # the lung's whole air, as the automatic split found it
    if not starts:
        return {}

    start_air = {}
    for name, (k, region) in starts.items():
        m = np.zeros(air.shape, dtype=bool)
        m[k] = region & air[k]
        start_air[name] = markers.get(name, m)
    territory = _territories(air, start_air, geometry)
    lungs = {name: _propagate(air & territory[name], *starts[name], work) for name in LUNGS if name in starts}
    lungs = _resolve_overlap(lungs, {name: air & t for name, t in territory.items()}, work.spacing)
    return bridge_pleural_indentations(lungs, hu, geometry) if params.air.bridge_pleura else lungs


def _resolve_overlap(
    lungs: dict[str, np.ndarray], owned_air: dict[str, np.ndarray], spacing: tuple[float, float]
) -> dict[str, np.ndarray]:
    """Where both lungs' contours claim a voxel, it goes to the lung whose air is nearer (per slice)."""
    if len(lungs) < 2:
        return lungs
    right, left = lungs[RIGHT_LUNG], lungs[LEFT_LUNG]
    both = right & left
    for k in np.flatnonzero(both.any(axis=(1, 2))):
        d_right = ndi.distance_transform_edt(~owned_air[RIGHT_LUNG][k], sampling=spacing)
        d_left = ndi.distance_transform_edt(~owned_air[LEFT_LUNG][k], sampling=spacing)
        to_left = both[k] & (d_left < d_right)
        right[k] &= ~to_left
        left[k] &= ~(both[k] & ~to_left)
    return {RIGHT_LUNG: right, LEFT_LUNG: left}


def _automatic_starts(
    air: np.ndarray, geometry: VolumeGeometry, work: _SliceWork
) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """Without seeds: each lung starts on the slice where its air is largest.

    Returns, per lung, the start slice, the snaked start region and the lung's whole air.
    """
    params = work.params.air
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    lungs = largest_components(air, geometry, params)
    if len(lungs) == 1:
        lungs = split_in_two(lungs[0], spacing_kji, geometry, params) or lungs
    starts = {}
    for name, mask in name_by_side(lungs, geometry).items():
        k = int(np.argmax(mask.sum(axis=(1, 2))))
        islands = _islands_over(mask[k], mask[k], work.min_pixels)
        starts[name] = (k, _snake_region(islands, work, k), mask)
    return starts


def _check_correction(hu: np.ndarray, geometry: VolumeGeometry, lungs: dict[str, np.ndarray], k: int,
                      corrected: np.ndarray) -> None:
    check_volume(hu, geometry)
    for lung, mask in lungs.items():
        check_same_shape(mask, hu.shape, f"the {lung} mask")
    if not 0 <= int(k) < hu.shape[0]:
        raise ValueError(f"slice k={k} lies outside the volume's {hu.shape[0]} slices")
    check_same_shape(corrected, hu.shape[1:], "the corrected slice")


def repropagate_lung(
    hu: np.ndarray,
    geometry: VolumeGeometry,
    lungs: dict[str, np.ndarray],
    name: str,
    k: int,
    corrected: np.ndarray,
    params: SnakeLungParameters | None = None,
) -> dict[str, np.ndarray]:
    """Replace ``name`` on slice ``k`` by ``corrected`` and re-propagate it up and down.

    The other lung stays exactly as it was; the corrected lung never takes its voxels.

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    lungs : dict of str to ndarray
        The current lungs, bool masks of ``hu``'s shape (either may be absent).
    name : str
        The lung to re-propagate: ``"right lung"`` or ``"left lung"``.
    k : int
        The corrected axial slice (array index).
    corrected : ndarray
        The lung on slice ``k``, bool (j, i).
    params : SnakeLungParameters, optional
        ``SnakeLungParameters()`` by default.

    Returns
    -------
    dict of str to ndarray
        ``lungs`` with ``name`` replaced.

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, a lung mask is not of ``hu``'s shape, ``k`` is
        not a slice of the volume or ``corrected`` is not of one slice's shape.
    InputError
        If ``name`` is not a lung, or ``corrected`` is empty.

    Examples
    --------
    >>> hu = np.full((8, 32, 48), -1000.0)
    >>> hu[:, 2:30, 2:46] = 40.0
    >>> hu[1:7, 8:24, 6:20] = hu[1:7, 8:24, 28:42] = -850.0
    >>> g = VolumeGeometry(size=(48, 32, 8), spacing=(5.0, 5.0, 5.0), origin=(-120.0, -80.0, 0.0))
    >>> lungs = segment_lungs_snake(hu, g)
    >>> corrected = lungs["right lung"][3].copy()
    >>> corrected[:, :14] = False  # the user cut the lateral half off slice 3
    >>> out = repropagate_lung(hu, g, lungs, "right lung", 3, corrected)
    >>> int(out["right lung"][3].sum()), int(out["right lung"].sum()), out["left lung"] is lungs["left lung"]
    (96, 1216, True)
    """
    _check_correction(hu, geometry, lungs, k, corrected)
    if name not in LUNGS:
        raise InputError(f"unknown lung {name!r}; use 'right lung' or 'left lung'")
    if not corrected.any():
        raise InputError(f"the corrected {name} contour on slice {k + 1} is empty")
    params = params or SnakeLungParameters()
    air = lung_air(hu, geometry, params.air)
    others = np.zeros(air.shape, dtype=bool)
    for other, mask in lungs.items():
        if other != name:
            others |= mask
    work = _SliceWork(hu, geometry, params)
    region = corrected & ~others[k]
    new = _propagate(air & ~others, k, region, work)
    out = dict(lungs)
    out[name] = new & ~others
    return out
