"""Analytic shapes with signed distances, for the synthetic thorax's anatomy and tumours."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _norm(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class _Capsule:
    """A tube segment with round ends; the radius tapers linearly from r0 at p0 to r1 at p1."""

    __slots__ = ("p0", "axis", "length", "r0", "r1", "lo", "hi")

    def __init__(self, p0: Sequence[float], p1: Sequence[float], r0: float, r1: float | None = None):
        self.p0 = np.asarray(p0, dtype=float)
        p1 = np.asarray(p1, dtype=float)
        self.r0 = float(r0)
        self.r1 = float(r0 if r1 is None else r1)
        d = p1 - self.p0
        self.length = float(np.linalg.norm(d))
        self.axis = d / self.length if self.length > 0 else np.array([0.0, 0.0, 1.0])
        r = max(self.r0, self.r1)
        self.lo = np.minimum(self.p0, p1) - r
        self.hi = np.maximum(self.p0, p1) + r

    def offsets(self, x, y, z):
        """Vector from the nearest axis point to (x, y, z), and the tube radius there."""
        dx, dy, dz = x - self.p0[0], y - self.p0[1], z - self.p0[2]
        along = dx * self.axis[0] + dy * self.axis[1] + dz * self.axis[2]
        np.clip(along, 0.0, self.length, out=along)
        dx = dx - along * self.axis[0]
        dy = dy - along * self.axis[1]
        dz = dz - along * self.axis[2]
        if self.r1 != self.r0 and self.length > 0:
            radius = self.r0 + (self.r1 - self.r0) / self.length * along
        else:
            radius = self.r0
        return dx, dy, dz, radius

    def field(self, x, y, z):
        dx, dy, dz, radius = self.offsets(x, y, z)
        return np.sqrt(dx * dx + dy * dy + dz * dz) - radius


class _ShapeList(list):
    """A long list of shapes (vessels, ribs...) that knows their z extents, so that a slab
    skips those outside it in one test."""

    _extents: tuple[np.ndarray, np.ndarray] | None = None

    def z_extents(self) -> tuple[np.ndarray, np.ndarray]:
        if self._extents is None or len(self._extents[0]) != len(self):
            self._extents = (np.array([s.lo[2] for s in self]), np.array([s.hi[2] for s in self]))
        return self._extents


def _polyline(points: Sequence[Sequence[float]], radii: float | Sequence[float]) -> list[_Capsule]:
    """Tube along a polyline; ``radii`` per vertex (or one for all)."""
    pts = np.asarray(points, dtype=float)
    r = np.broadcast_to(np.asarray(radii, dtype=float), (len(pts),))
    return [_Capsule(pts[n], pts[n + 1], r[n], r[n + 1]) for n in range(len(pts) - 1)]


class _Ellipsoid:
    """Ellipsoid with semi-axes (a, b, c), turned by ``angle_deg`` about z."""

    def __init__(self, centre, semi_axes, angle_deg: float = 0.0):
        self.centre = np.asarray(centre, dtype=float)
        self.semi = np.asarray(semi_axes, dtype=float)
        self.angle_deg = float(angle_deg)
        t = math.radians(angle_deg)
        self.cos, self.sin = math.cos(t), math.sin(t)
        r = self.semi.max()
        self.lo, self.hi = self.centre - r, self.centre + r

    def field(self, x, y, z):
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        u = (self.cos * dx + self.sin * dy) / self.semi[0]
        v = (-self.sin * dx + self.cos * dy) / self.semi[1]
        w = dz / self.semi[2]
        return (np.sqrt(u * u + v * v + w * w) - 1.0) * float(self.semi.min())


class _Box:
    """Axis-aligned box with rounded edges (``rounding`` mm)."""

    def __init__(self, lo, hi, rounding: float = 0.0):
        self.lo, self.hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        self.centre = 0.5 * (self.lo + self.hi)
        self.half = 0.5 * (self.hi - self.lo) - rounding
        self.rounding = rounding

    def field(self, x, y, z):
        qx = np.abs(x - self.centre[0]) - self.half[0]
        qy = np.abs(y - self.centre[1]) - self.half[1]
        qz = np.abs(z - self.centre[2]) - self.half[2]
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
        inside = np.minimum(np.maximum(np.maximum(qx, qy), qz), 0)
        return outside + inside - self.rounding


class _EllipticCylinder:
    """Cylinder along z with an elliptic section (rx, ry) around (cx, cy), from z0 to z1."""

    def __init__(self, cx, cy, rx, ry, z0, z1):
        self.cx, self.cy, self.rx, self.ry, self.z0, self.z1 = cx, cy, rx, ry, z0, z1
        self.lo = np.array([cx - rx, cy - ry, z0])
        self.hi = np.array([cx + rx, cy + ry, z1])

    def field(self, x, y, z):
        u, v = (x - self.cx) / self.rx, (y - self.cy) / self.ry
        radial = (np.sqrt(u * u + v * v) - 1.0) * min(self.rx, self.ry)
        axial = np.abs(z - 0.5 * (self.z0 + self.z1)) - 0.5 * (self.z1 - self.z0)
        return np.maximum(radial, axial)


class _Lesion:
    """A tumour body: a lobulated ellipsoid of nominal radius R.

    Surface radius along the unit direction u: R * (e(u) + sum_m b_m T_m(u . v_m)), e the
    random ellipsoid stretch and T Chebyshev polynomials (lobes).
    """

    def __init__(self, rng: np.random.Generator, centre, radius: float, lobulation: float):
        self.centre = np.asarray(centre, dtype=float)
        self.radius = float(radius)
        q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        self.rotation = q
        self.stretch = rng.uniform(0.85, 1.15, 3)
        self.stretch /= np.prod(self.stretch) ** (1 / 3)
        self.lobe_dirs = _norm(rng.standard_normal((4, 3)))
        self.lobe_orders = rng.integers(2, 5, 4)
        self.lobe_amps = rng.uniform(-1, 1, 4) * lobulation
        reach = self.radius * (self.stretch.max() + np.abs(self.lobe_amps).sum())
        self.lo, self.hi = self.centre - reach, self.centre + reach

    def field(self, x, y, z):
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        inv = 1.0 / np.maximum(r, 1e-6)
        # ellipsoid radius along the direction: 1 / |S^-1 R^T u|
        acc = 0.0
        for axis in range(3):
            c = self.rotation[:, axis]
            comp = (dx * c[0] + dy * c[1] + dz * c[2]) * inv / self.stretch[axis]
            acc = acc + comp * comp
        surface = 1.0 / np.sqrt(acc)
        for v, order, amp in zip(self.lobe_dirs, self.lobe_orders, self.lobe_amps):
            cos_angle = (dx * v[0] + dy * v[1] + dz * v[2]) * inv
            surface = surface + amp * _chebyshev(cos_angle, int(order))
        return r - self.radius * surface


def _chebyshev(c, order: int):
    if order == 2:
        return 2 * c * c - 1
    if order == 3:
        return c * (4 * c * c - 3)
    c2 = c * c
    return 8 * c2 * c2 - 8 * c2 + 1


def _superellipse(x, y, cx, cy, half_width, anterior, posterior, exponent, scale=1.0):
    """≈ signed distance (mm) to a superellipse outline in the axial plane, enlarged by
    ``scale`` (which may vary with z: the outline is homogeneous, so scaling is one subtraction)."""
    dy = y - cy
    b = np.where(dy < 0, anterior, posterior)
    u = np.abs(x - cx) / half_width
    v = np.abs(dy) / b
    rho = (u**exponent + v**exponent) ** (1.0 / exponent)
    return (rho - scale) * np.sqrt(half_width * b)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: the union of two shapes with a fillet of about k mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


# =======================================================================================
# The anatomy: every shape in mm, independent of the grid.


class _Tumor:
    """One tumour: its kind, lung, nominal centre and radius, and the shapes that draw it."""

    def __init__(self, kind: str, side: str, centre, radius: float):
        self.kind, self.side = kind, side
        self.centre = np.asarray(centre, dtype=float)
        self.radius = float(radius)
        # layers painted in order: (shapes, HU, blend, texture amplitude); the truth is the
        # union of all shapes of all layers, clipped to the lung
        self.layers: list[tuple[list, float, str, float]] = []
        # painted before the layers and not part of the truth (dense lung beside a mass)
        self.surroundings: list[tuple[list, float, str, float]] = []

    @property
    def shapes(self) -> list:
        return [s for shapes, *_ in self.layers for s in shapes]


def _perpendicular(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Unit vector perpendicular to ``axis``, as close as possible to ``hint``."""
    v = hint - axis * float(hint @ axis)
    n = np.linalg.norm(v)
    if n < 1e-6:
        v = np.cross(axis, [1.0, 0.0, 0.0])
        n = np.linalg.norm(v)
    return v / n


class _ValueNoise:
    """Smooth random texture with unit standard deviation, defined in mm: cubic B-spline
    interpolation of white noise on a lattice of ``step`` mm (the same at every resolution)."""

    # mean over positions of the sum of squared cubic B-spline weights, per axis
    _VARIANCE_PER_AXIS = 151.0 / 315.0

    def __init__(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, step: float):
        self.lo, self.step = np.asarray(lo, float), float(step)
        shape = tuple(int(np.ceil((hi[a] - lo[a]) / step)) + 1 for a in (2, 1, 0))
        self.values = rng.standard_normal(shape, dtype=np.float32) / np.float32(self._VARIANCE_PER_AXIS**1.5)

    def __call__(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Texture on the grid of 1D coordinates: shape (len(zs), len(ys), len(xs))."""
        out = self.values
        # z first and x last: only the last step works on the full output size
        for axis, coords, lattice_axis in ((0, zs, 2), (1, ys, 1), (2, xs, 0)):
            u = (np.asarray(coords, float) - self.lo[lattice_axis]) / self.step
            np.clip(u, 0.0, self.values.shape[axis] - 1.0, out=u)  # constant beyond the lattice
            base = np.floor(u).astype(int)
            t = (u - base).astype(np.float32)
            first = max(base.min() - 1, 0)
            last = min(base.max() + 3, out.shape[axis])
            out = np.take(out, np.arange(first, last), axis=axis)  # crop to what is needed
            weights = (
                (1 - t) ** 3 / 6,
                (3 * t**3 - 6 * t**2 + 4) / 6,
                (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
                t**3 / 6,
            )
            shape = [1, 1, 1]
            shape[axis] = len(coords)
            acc = None
            for m, w in enumerate(weights):
                idx = np.clip(base - 1 + m - first, 0, out.shape[axis] - 1)
                term = np.take(out, idx, axis=axis) * w.reshape(shape)
                acc = term if acc is None else acc + term
            out = acc
        return out


def _window_1d(xs, ys, zs, lo, hi):
    """Slices of sorted 1D coordinate arrays that fall within [lo, hi] (x, y, z), or None."""
    out = []
    for coords, a in ((zs, 2), (ys, 1), (xs, 0)):
        start = int(np.searchsorted(coords, lo[a], side="left"))
        stop = int(np.searchsorted(coords, hi[a], side="right"))
        if stop <= start:
            return None
        out.append(slice(start, stop))
    return tuple(out)
