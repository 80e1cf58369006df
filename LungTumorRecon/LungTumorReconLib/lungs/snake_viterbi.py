"""A closed point snake whose energy is minimised by dynamic programming (the Viterbi algorithm).

Written by hand: no maintained library offers a Viterbi/dynamic-programming snake
(scikit-image's ``active_contour`` is the gradient-descent snake of Kass et al.; it is our
peer in ``make bench``). The method follows Amini, Weymouth & Jain, "Using dynamic programming
for solving variational problems in vision", IEEE PAMI 12(9), 1990, and the energy of the
seed paper (000, section III.A, eqs. 2–5):

    E = Σ_i  α |v_i − v_{i−1}|² + β |v_{i+1} − 2 v_i + v_{i−1}|²     (E_int, eq. 4)
           + γ E_image(v_i),  E_image = −|∇I|²                         (eq. 5)
           + λ E_con(v_i)                                             (constant external term)

Each point v_i may move to one of M candidates on its normal; the search radius shrinks over
the iterations. The second-order term makes the state of the Viterbi recursion the pair
(candidate of v_{i−1}, candidate of v_i), so one pass costs O(N M³). The contour is closed:
each pass holds the first two points where they are and closes the loop at the end; the
next pass starts half-way round, so every point is free in some pass.

Distances are in millimetres (the pixel spacing is applied), so the weights hold at any
resolution. Points are (row, col) = (j, i) pixel coordinates of one axial slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import check_spacing


@dataclass(frozen=True)
class SnakeParameters:
    alpha: float = 0.02  # membrane (first-order) weight, per mm²
    beta: float = 0.05  # thin-plate (second-order) weight, per mm²
    gamma: float = 1.0  # image edge weight (E_image is normalised to [−1, 0])
    region_weight: float = 1.0  # E_con: inside should be lung, outside should not
    point_spacing_mm: float = 3.0
    min_points: int = 16
    max_points: int = 400
    candidates: int = 7  # per normal, odd: the middle one is "stay"
    search_radii_mm: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)  # shrinking search area
    radius_scale_above_mm: float = 1.0  # pixels larger than this scale the search radii up
    edge_sigma_mm: float = 1.0
    edge_scale_hu_per_mm: float = 300.0  # |∇I| at which E_image saturates
    air_hu: float = -400.0
    probe_mm: float = 1.5  # how far inside/outside E_con looks

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SliceEnergy:
    """Per-slice external energy images, computed once and sampled at candidate positions."""

    edge: np.ndarray  # −|∇I|² normalised to [−1, 0]
    airness: np.ndarray  # 1 for lung-like (air) HU, 0 for tissue, linear in between
    spacing: tuple[float, float]  # (row, col) mm


def slice_energy(hu: np.ndarray, spacing: tuple[float, float], params: SnakeParameters) -> SliceEnergy:
    """The external energy images of one axial slice, computed once and sampled by the snake.

    E_image = −|∇I|² (eq. 5) of the HU clipped to −1000…200 and differentiated with a Gaussian
    of ``edge_sigma_mm``, normalised to [−1, 0] (it saturates at ``edge_scale_hu_per_mm``); and
    the air-likeness that E_con probes (1 at HU <= ``air_hu`` − 200, 0 at HU >= ``air_hu`` + 200).

    Parameters
    ----------
    hu : ndarray
        One axial slice in Hounsfield units, (row, col) = (j, i).
    spacing : tuple of float
        The pixel spacing (row, col) in mm.
    params : SnakeParameters
        The snake's parameters; ``edge_sigma_mm`` and ``edge_scale_hu_per_mm`` are used here.

    Returns
    -------
    SliceEnergy
        ``edge`` and ``airness`` (float32, the slice's shape) and the ``spacing``.

    Raises
    ------
    ValueError
        If ``hu`` is not 2D, ``spacing`` is not two positive numbers, or ``edge_sigma_mm`` or
        ``edge_scale_hu_per_mm`` is not positive.

    Examples
    --------
    >>> hu = np.full((16, 16), 40.0)
    >>> hu[4:12, 4:12] = -850.0  # an air square in soft tissue
    >>> energy = slice_energy(hu, (0.8, 0.8), SnakeParameters())
    >>> energy.edge.shape, float(energy.airness[8, 8]), float(energy.airness[0, 0])
    ((16, 16), 1.0, 0.0)
    """
    if np.ndim(hu) != 2:
        raise ValueError(f"hu must be one 2D axial slice (j, i), got {np.ndim(hu)} dimension(s)")
    check_spacing(spacing, 2)
    if params.edge_sigma_mm <= 0 or params.edge_scale_hu_per_mm <= 0:
        raise ValueError("edge_sigma_mm and edge_scale_hu_per_mm must be positive")
    image = np.clip(hu.astype(np.float32), -1000.0, 200.0)
    sigma = [params.edge_sigma_mm / s for s in spacing]
    gy = ndi.gaussian_filter(image, sigma, order=(1, 0)) / spacing[0]
    gx = ndi.gaussian_filter(image, sigma, order=(0, 1)) / spacing[1]
    g2 = (gx * gx + gy * gy) / params.edge_scale_hu_per_mm**2
    edge = -np.minimum(g2, 1.0)
    # air-likeness: 1 at HU <= air_hu - 200, 0 at HU >= air_hu + 200
    airness = np.clip((params.air_hu + 200.0 - image) / 400.0, 0.0, 1.0)
    return SliceEnergy(edge=edge.astype(np.float32), airness=airness.astype(np.float32), spacing=spacing)


def resample_closed(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along the closed polygon ``points``."""
    closed = np.vstack([points, points[:1]])
    seg = np.sqrt((np.diff(closed, axis=0) ** 2).sum(axis=1))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0:
        return np.repeat(points[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    return np.column_stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])])


def _normals(points: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Unit outward normals in pixel units (for a counter-clockwise contour in (row, col))."""
    mm = points * np.asarray(spacing)
    tangent = np.roll(mm, -1, axis=0) - np.roll(mm, 1, axis=0)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    return normal / np.asarray(spacing)  # a step of 1 mm in pixel units


def signed_area(points: np.ndarray) -> float:
    y, x = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _external(energy: SliceEnergy, cand: np.ndarray, normals: np.ndarray, params: SnakeParameters) -> np.ndarray:
    """E_image and E_con at every candidate, shape (N, M)."""
    n, m, _ = cand.shape
    flat = cand.reshape(-1, 2).T
    edge = ndi.map_coordinates(energy.edge, flat, order=1, mode="nearest").reshape(n, m)
    probe = normals[:, None, :] * params.probe_mm
    inside = ndi.map_coordinates(energy.airness, (cand - probe).reshape(-1, 2).T, order=1, mode="nearest")
    outside = ndi.map_coordinates(energy.airness, (cand + probe).reshape(-1, 2).T, order=1, mode="nearest")
    con = (1.0 - inside.reshape(n, m)) + outside.reshape(n, m)
    return params.gamma * edge + params.region_weight * con


def _viterbi_pass(cand_mm: np.ndarray, ext: np.ndarray, alpha: float, beta: float, fixed: int) -> np.ndarray:
    """One DP pass over a closed contour whose points 0 and 1 stay at candidate ``fixed``.

    cand_mm: (N, M, 2) candidate positions in mm; ext: (N, M) external energy.
    Returns the chosen candidate index per point.
    """
    n, m, _ = cand_mm.shape
    inf = np.float64(np.inf)
    # S[a, b]: best energy of points 0..i with v_{i-1} at a and v_i at b.
    S = np.full((m, m), inf)
    S[fixed, fixed] = ext[0, fixed] + ext[1, fixed] + alpha * np.sum((cand_mm[1, fixed] - cand_mm[0, fixed]) ** 2)
    back = np.zeros((n, m, m), dtype=np.int16)
    # all pairwise and triple terms at once; the recursion below is then three array ops a point
    p2, p1, p0 = cand_mm[:-2], cand_mm[1:-1], cand_mm[2:]  # v_{i-2}, v_{i-1}, v_i for i = 2..n-1
    d1 = ((p0[:, None, :, :] - p1[:, :, None, :]) ** 2).sum(-1)  # (i, a, b)
    curv = p0[:, None, None, :, :] - 2.0 * p1[:, None, :, None, :] + p2[:, :, None, None, :]
    d2 = beta * (curv**2).sum(-1)  # (i, z, a, b)
    local = alpha * d1 + ext[2:, None, :]  # (i, a, b)
    for i in range(2, n):
        total = S[:, :, None] + d2[i - 2]  # (z, a, b)
        back[i] = total.argmin(axis=0)  # best v_{i-2} for each (a, b)
        S = total.min(axis=0) + local[i - 2]
    # close the loop: links (n-1 -> 0) and curvature at n-1 and at 0 (with v_0 = v_1 = fixed)
    q0, q1 = cand_mm[0, fixed], cand_mm[1, fixed]
    pn1 = cand_mm[n - 1]  # candidates of v_{n-1} (b)
    pn2 = cand_mm[n - 2]  # candidates of v_{n-2} (a)
    link = ((q0[None, :] - pn1) ** 2).sum(-1)  # |v_0 − v_{n−1}|², by b
    curv_last = ((q0[None, None, :] - 2 * pn1[None, :, :] + pn2[:, None, :]) ** 2).sum(-1)  # at v_{n−1}, (a, b)
    curv_first = ((q1[None, :] - 2 * q0[None, :] + pn1) ** 2).sum(-1)  # at v_0, by b
    closing = alpha * link[None, :] + beta * (curv_last + curv_first[None, :])
    a, b = np.unravel_index(np.argmin(S + closing), S.shape)
    choice = np.empty(n, dtype=int)
    choice[n - 1], choice[n - 2] = b, a
    for i in range(n - 1, 1, -1):
        z = back[i, choice[i - 1], choice[i]]
        choice[i - 2] = z
    choice[0] = choice[1] = fixed
    return choice


def snake_energy(points: np.ndarray, energy: SliceEnergy, params: SnakeParameters) -> float:
    """Total energy of a contour (for tests and diagnostics)."""
    mm = points * np.asarray(energy.spacing)
    d1 = ((mm - np.roll(mm, 1, axis=0)) ** 2).sum()
    d2 = ((np.roll(mm, -1, axis=0) - 2 * mm + np.roll(mm, 1, axis=0)) ** 2).sum()
    normals = _normals(points, energy.spacing)
    ext = _external(energy, points[:, None, :], normals, params).sum()
    return float(params.alpha * d1 + params.beta * d2 + ext)


def _check_snake_arguments(points: np.ndarray, params: SnakeParameters) -> None:
    if np.ndim(points) != 2 or np.shape(points)[1] != 2 or len(points) < 3:
        raise ValueError(f"points must be a (K, 2) closed contour with K >= 3, got shape {np.shape(points)}")
    if not np.all(np.isfinite(points)):
        raise ValueError("points must be finite")
    if params.candidates < 1 or params.point_spacing_mm <= 0 or not 3 <= params.min_points <= params.max_points:
        raise ValueError("the snake needs candidates >= 1, point_spacing_mm > 0 and 3 <= min_points <= max_points")


def viterbi_snake(points: np.ndarray, energy: SliceEnergy, params: SnakeParameters | None = None) -> np.ndarray:
    """Refine a closed contour by the Viterbi snake (energy E of the module's docstring).

    The contour is first resampled to one point every ``point_spacing_mm`` (``min_points`` to
    ``max_points`` points); it is made counter-clockwise so that normals point outward. Each
    pass moves every point to the best of ``candidates`` positions on its normal, the exact
    minimum of E by dynamic programming, within a search radius that shrinks over
    ``search_radii_mm``.

    Parameters
    ----------
    points : ndarray
        (K, 2) closed contour of (row, col) pixel points, K >= 3.
    energy : SliceEnergy
        The slice's external energy (:func:`slice_energy`).
    params : SnakeParameters, optional
        Weights and search schedule; ``SnakeParameters()`` by default.

    Returns
    -------
    ndarray
        (N, 2) refined contour of (row, col) pixel points, counter-clockwise, evenly spaced.

    Raises
    ------
    ValueError
        If ``points`` is not (K, 2) finite points with K >= 3, or ``params`` has fewer than one
        candidate, a non-positive point spacing or ``min_points`` outside 3…``max_points``.

    Examples
    --------
    >>> hu = np.where(np.hypot(*np.mgrid[-24:24, -24:24]) <= 14, -850.0, 40.0)  # an air disc
    >>> energy = slice_energy(hu, (1.0, 1.0), SnakeParameters())
    >>> t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    >>> start = np.column_stack([24 + 10 * np.sin(t), 24 + 10 * np.cos(t)])  # inside the disc
    >>> out = viterbi_snake(start, energy)
    >>> bool(abs(np.hypot(out[:, 0] - 24, out[:, 1] - 24).mean() - 14) < 1.0)
    True
    """
    params = params or SnakeParameters()
    _check_snake_arguments(points, params)
    spacing = energy.spacing
    mm = points * np.asarray(spacing)
    perimeter = float(np.sqrt((np.diff(np.vstack([mm, mm[:1]]), axis=0) ** 2).sum(axis=1)).sum())
    n = int(np.clip(round(perimeter / params.point_spacing_mm), params.min_points, params.max_points))
    v = resample_closed(points, n)
    if signed_area(v) < 0:
        v = v[::-1].copy()
    m = params.candidates
    fixed = m // 2
    shape = np.asarray(energy.edge.shape) - 1
    start = 0
    # on coarse grids (pixels over 1 mm) the schedule scales with the pixel, so that each
    # step still spans whole pixels
    scale = max(1.0, max(spacing) / params.radius_scale_above_mm)
    for radius in (r * scale for r in params.search_radii_mm):
        offsets = np.linspace(-radius, radius, m)
        normals = _normals(v, spacing)
        cand = v[:, None, :] + offsets[None, :, None] * normals[:, None, :]
        cand = np.clip(cand, 0, shape)
        ext = _external(energy, cand, normals, params)
        cand_mm = cand * np.asarray(spacing)
        order = np.roll(np.arange(n), -start)
        choice = _viterbi_pass(cand_mm[order], ext[order], params.alpha, params.beta, fixed)
        v = cand[order, choice][np.argsort(order)]
        start = (start + n // 2) % n
        # keep the points evenly spaced for the next, finer search
        v = resample_closed(v, n)
    return v
