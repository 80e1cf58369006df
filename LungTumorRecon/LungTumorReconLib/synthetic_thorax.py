"""Synthetic chest CT with exact truth, for tests, benchmarks and training.

:func:`make_thorax` renders a fixed adult thorax, defined by analytic shapes in millimetres,
onto any axis-aligned voxel grid, together with truth masks computed from the same shapes:

* body outline with skin, subcutaneous fat and chest-wall muscle; ribs with costal
  cartilage, sternum and a thoracic spine (vertebral bodies, discs, posterior arches);
* mediastinum: heart, aorta and great vessels, superior vena cava, pulmonary arteries,
  oesophagus, trachea splitting at the carina into the two main bronchi;
* lungs (the region inside the pleura) with domed apices, a two-domed diaphragm above the
  liver, stomach and spleen, parenchyma with a gravity gradient and a texture, pulmonary
  vessel trees that branch from the hila and the left atrium to fill the lungs (radii by
  Murray's law), and lobar/segmental bronchi beside the arteries;
* tumours of six kinds (:data:`TUMOR_KINDS`) placed at random inside the lungs, and large
  masses against the chest wall (:data:`MASS_KINDS`: 30-60 mm across, indenting the lung).

Coordinates are LPS (+x patient left, +y posterior, +z superior); the grid has the identity
direction, so array axes (k, j, i) run along (z, y, x). The anatomy depends neither on the
grid nor on the seed; the seed draws the vessel trees, the tumours, the parenchyma texture and
the noise. Imaging: partial volume from each shape's local signed distance and the voxel's
extent across the surface, a Gaussian point-spread of ``blur_mm``, then correlated Gaussian
noise of standard deviation ``noise_hu``.

The volume is rendered in slabs of slices, so memory stays bounded for large grids; the
result does not depend on the slab size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from .coordinates import VolumeGeometry

__all__ = ["CARINA_LPS", "MASS_KINDS", "TUMOR_KINDS", "ThoraxCase", "make_thorax"]

TUMOR_KINDS = ("solid", "part-solid", "ground-glass", "spiculated", "juxta-pleural", "juxta-vascular")
MASS_KINDS = ("pleural-mass",)  # placed as juxta-pleural tumours, 15-30 mm in radius

# ---------------------------------------------------------------------------------------
# Tissue values, HU of a non-contrast chest CT.
HU_AIR = -1000.0
HU_FAT = -100.0
HU_MEDIASTINAL_FAT = -90.0
HU_SKIN = 20.0
HU_MUSCLE = 45.0
HU_BLOOD = 40.0
HU_AORTA = 45.0
HU_HEART = 40.0
HU_OESOPHAGUS = 40.0
HU_AIRWAY_WALL = 40.0
HU_LIVER = 55.0
HU_SPLEEN = 45.0
HU_STOMACH = 15.0
HU_CORTICAL_BONE = 1000.0
HU_RIB_MARROW = 300.0
HU_VERTEBRA_CANCELLOUS = 350.0
HU_VERTEBRA_CORTEX = 900.0
HU_POSTERIOR_ARCH = 650.0
HU_DISC = 85.0
HU_CANAL = 25.0
HU_CARTILAGE = 120.0
HU_JUNCTION_LINE = 20.0
# Parenchyma: mean at mid-depth, the supine gravity gradient (dependent lung is denser) and
# the amplitude of the mm-scale texture (secondary lobules, sub-resolution vessels).
HU_PARENCHYMA = -880.0
PARENCHYMA_GRAVITY_HU = 40.0
PARENCHYMA_TEXTURE_HU = 28.0
# Tumours: mean HU and texture amplitude.
HU_TUMOR_SOLID = 40.0
TUMOR_SOLID_TEXTURE_HU = 12.0
HU_TUMOR_GGO_HALO = -450.0
HU_TUMOR_GGO = -560.0
TUMOR_GGO_TEXTURE_HU = 50.0

# Noise grain: in-plane Gaussian correlation of the noise (real CT noise is correlated over
# about a millimetre: neighbouring 0.6-0.7 mm pixels correlate at 0.7-0.85).
NOISE_GRAIN_MM = 0.7
HU_CLIP = (-1024.0, 3071.0)

# Where the field of view is centred (LPS mm): the middle of the thorax.
FOV_CENTRE_LPS = (0.0, 5.0, 0.0)

# ---------------------------------------------------------------------------------------
# Anatomy, mm. Outlines are superellipses |dx/a|^n + |dy/b|^n = 1 with separate anterior and
# posterior half-depths b.
BODY_OUTLINE = dict(half_width=160.0, anterior=110.0, posterior=125.0, exponent=2.6)
SKIN_MM = 2.0
FAT_INSET = dict(lateral=14.0, anterior=10.0, posterior=10.0)
# Thoracic cavity (parietal pleura): this outline at CAVITY_DOME_START_Z, widening downwards by
# CAVITY_TAPER over CAVITY_TAPER_MM (the rib cage is a cone); above CAVITY_DOME_START_Z it is
# cut by two ellipsoidal caps, one per lung, that close at LUNG_APEX_Z: the two apices.
CAVITY_OUTLINE = dict(half_width=128.0, anterior=88.0, posterior=90.0, exponent=2.4)
CAVITY_TAPER = 0.09
CAVITY_TAPER_MM = 175.0
CAVITY_DOME_START_Z = 45.0
LUNG_APEX_Z = 130.0
APEX_DOME = dict(x=60.0, y=12.0, rx=82.0, ry=100.0)
# Diaphragm: two domes, the right one higher; z of the surface = peak - depth * r^2 with r the
# normalised horizontal distance from the dome's centre (r = 1 near the chest wall).
DIAPHRAGM_DOMES = (
    dict(x=-60.0, y=-15.0, peak_z=-48.0, depth=80.0, rx=80.0, ry_anterior=120.0, ry_posterior=105.0),
    dict(x=60.0, y=-12.0, peak_z=-62.0, depth=66.0, rx=80.0, ry_anterior=120.0, ry_posterior=105.0),
)
DIAPHRAGM_THICKNESS_MM = 5.0
# The trachea descends in the midline to the carina, where the main bronchi part.
CARINA_LPS = (0.0, 12.0, 28.0)
# Smoothing radius of the mediastinal outline (smooth union of its organs).
MEDIASTINUM_SMOOTHING_MM = 8.0
# The midline septum of fat between the lungs (anterior mediastinum); with lungs_touch it is
# absent over the anterior junction, where the lungs meet at x = 0.
SEPTUM_HALF_WIDTH_MM = 6.0
ANTERIOR_JUNCTION = dict(y_max=-40.0, z_min=5.0, z_max=85.0)
JUNCTION_LINE_HALF_MM = 0.5
# Spine: vertebral bodies every LEVEL_SPACING_MM, level 0 (T1) at TOP_LEVEL_Z.
VERTEBRA = dict(y=52.0, rx=21.0, ry=16.0, height=19.0, cortex=1.5)
TOP_LEVEL_Z = 118.0
LEVEL_SPACING_MM = 23.5
SPINAL_CANAL = dict(y=79.0, radius=9.0)
RIB_RADIUS_MM = 4.5
RIB_CORTEX_MM = 1.3
CARTILAGE_RADIUS_MM = 4.5
# Pulmonary vessel trees (arteries from the hila, veins from the left atrium), grown by
# splitting territories of lung points: points per tree system (one per lung and kind), points
# per terminal branch, and the terminal radius (radius ~ points^(1/3), Murray's law).
VESSEL_POINTS_PER_SYSTEM = 3200
VESSEL_POINTS_PER_TERMINAL = 4
VESSEL_MIN_RADIUS_MM = 0.6
# Texture lattice step (value noise, defined in mm so every resolution shows the same texture).
TEXTURE_STEP_MM = 2.0
# Step of the coarse lattice of lung depth used to grow vessels and to place tumours.
DEPTH_LATTICE_MM = 3.0
ANATOMY_BOX = (np.array([-165.0, -115.0, -160.0]), np.array([165.0, 130.0, 150.0]))  # lo, hi (x, y, z)

# Voxels per rendering slab (about 16 MB per float32 array).
SLAB_VOXELS = 4_000_000
_BIG = np.float32(1.0e4)


@dataclass
class ThoraxCase:
    """A synthetic chest CT and its truth.

    ``ct`` is int16 HU indexed (k, j, i); ``labels`` are bool masks on the same grid:
    ``"right lung"``, ``"left lung"`` (everything inside the pleura: parenchyma, vessels,
    intrapulmonary bronchi, tumours), ``"tumor"`` (union of all tumours, possibly empty),
    ``"airways"`` (lumen of the trachea and both main bronchi, outside the lungs), ``"body"``,
    ``"ribs"`` (rib bone, not cartilage) and ``"aorta"``. ``tumors`` holds one dict per
    tumour: ``kind``, ``centre_lps``, ``radius_mm`` (nominal), ``side`` (which lung),
    ``voxels`` (its truth voxels on this grid; 0 when outside the field of view) and
    ``volume_ml``. ``seeds`` holds an LPS point deep inside each lung present in the field of
    view (``"right lung"``, ``"left lung"``) and the centre of each tumour: ``"tumor"`` for
    the first, ``"tumor 2"``, ``"tumor 3"``... for the others (:meth:`seed_points` lists them
    all labelled ``"tumor"``, as a markups file does).
    """

    ct: np.ndarray
    geometry: VolumeGeometry
    labels: dict[str, np.ndarray]
    tumors: list[dict] = field(default_factory=list)
    seeds: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def seed_points(self) -> list[tuple[str, tuple[float, float, float]]]:
        """All seeds as (label, LPS) with the project's labels: one ``tumor`` point per tumour."""
        return [("tumor" if name.startswith("tumor") else name, lps) for name, lps in self.seeds.items()]


def make_thorax(
    size: Sequence[int] = (256, 256, 80),
    spacing: Sequence[float] = (1.4, 1.4, 4.0),
    tumors: Sequence[str] = ("solid", "juxta-pleural"),
    seed: int = 0,
    noise_hu: float = 20.0,
    blur_mm: float = 1.0,
    lungs_touch: bool = False,
) -> ThoraxCase:
    """Render the synthetic thorax on a grid of ``size`` (ni, nj, nk) voxels of ``spacing`` mm.

    The field of view is centred on the thorax; a smaller one crops it, a larger one adds air
    (and more body above and below). ``tumors`` lists tumour kinds from :data:`TUMOR_KINDS`
    (repeats allowed); they alternate between the lungs. ``blur_mm`` is the standard
    deviation of the Gaussian point-spread in mm, ``noise_hu`` the standard deviation of the
    noise. With ``lungs_touch`` the lungs meet at an anterior junction line (their masks stay
    disjoint but touch). Deterministic for a given ``seed``.
    """
    size = tuple(int(n) for n in size)
    spacing = tuple(float(s) for s in spacing)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"size must be three positive integers, got {size}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    unknown = [k for k in tumors if k not in TUMOR_KINDS + MASS_KINDS]
    if unknown:
        raise ValueError(f"unknown tumour kind(s) {unknown}; use {TUMOR_KINDS + MASS_KINDS}")
    if noise_hu < 0 or blur_mm < 0:
        raise ValueError("noise_hu and blur_mm must be >= 0")

    if int(seed) < 0:
        raise ValueError("seed must be >= 0")

    origin = tuple(c - 0.5 * (n - 1) * s for c, n, s in zip(FOV_CENTRE_LPS, size, spacing))
    geometry = VolumeGeometry(size=size, spacing=spacing, origin=origin)
    anatomy = _Anatomy(int(seed), lungs_touch=lungs_touch, tumor_kinds=tuple(tumors))
    renderer = _Renderer(anatomy, geometry, seed=int(seed), noise_hu=float(noise_hu), blur_mm=float(blur_mm))
    ct, labels, tumor_voxels = renderer.render()

    tumor_records = []
    seeds: dict[str, tuple[float, float, float]] = {}
    seeds.update(anatomy.lung_seeds(geometry))
    for n, tumor in enumerate(anatomy.tumors):
        centre = tuple(float(v) for v in tumor.centre)
        tumor_records.append(
            {
                "kind": tumor.kind,
                "centre_lps": centre,
                "radius_mm": float(tumor.radius),
                "side": tumor.side,
                "voxels": int(tumor_voxels[n]),
                "volume_ml": float(tumor_voxels[n] * geometry.voxel_volume_ml),
            }
        )
        seeds["tumor" if n == 0 else f"tumor {n + 1}"] = centre
    return ThoraxCase(ct=ct, geometry=geometry, labels=labels, tumors=tumor_records, seeds=seeds)


# =======================================================================================
# Analytic shapes. Each has a bounding box (lo, hi) in LPS mm and a field(x, y, z) that is
# negative inside, zero on the surface and close to the signed distance in mm nearby; x, y, z
# are broadcastable arrays (on a grid: x (1,1,nx), y (1,ny,1), z (nz,1,1)).


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

    @property
    def shapes(self) -> list:
        return [s for shapes, *_ in self.layers for s in shapes]


class _Anatomy:
    """All analytic structures of one case (fixed thorax, seeded vessels and tumours)."""

    def __init__(self, seed: int, lungs_touch: bool, tumor_kinds: tuple[str, ...]):
        self.lungs_touch = lungs_touch
        self._build_mediastinum()
        self._build_bones()
        self._build_abdomen()
        # Random parts, each from its own stream so that adding a tumour leaves the vessels.
        texture_rng, vessel_rng, tumor_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        self.texture = _ValueNoise(texture_rng, ANATOMY_BOX[0], ANATOMY_BOX[1], TEXTURE_STEP_MM)
        self.depth = _DepthLattice(self)
        self._grow_vessels(vessel_rng)
        self.tumors = self._place_tumors(tumor_rng, tumor_kinds)

    # ---- outlines ------------------------------------------------------------------
    @staticmethod
    def apex_scale(z):
        """Relative size of the apical caps' section at z (1 up to CAVITY_DOME_START_Z, 0 at the apex)."""
        t = np.clip((np.asarray(z, dtype=float) - CAVITY_DOME_START_Z) / (LUNG_APEX_Z - CAVITY_DOME_START_Z), 0.0, 1.0)
        return np.sqrt(1.0 - t * t)

    def cavity_envelope(self, z):
        """A superellipse (half-width, anterior, posterior half-depth) just containing the
        cavity's section at z: the path of the ribs."""
        s, taper = self.apex_scale(z), self.cavity_taper(z)
        c, d = CAVITY_OUTLINE, APEX_DOME
        a = np.minimum(c["half_width"] * taper, d["x"] + d["rx"] * s)
        ba = np.minimum(c["anterior"] * taper, np.maximum(d["ry"] * s - d["y"], 5.0))
        bp = np.minimum(c["posterior"] * taper, d["ry"] * s + d["y"])
        return a, ba, bp

    @staticmethod
    def cavity_taper(z):
        """Scale of the cavity's outline at z: 1 at the dome's base, 1 + CAVITY_TAPER at the bases."""
        return 1.0 + CAVITY_TAPER * np.clip((CAVITY_DOME_START_Z - np.asarray(z, dtype=float)) / CAVITY_TAPER_MM, 0.0, 1.0)

    def cavity_field(self, x, y, z):
        """Inside the parietal pleura (and, below the lungs, the abdominal cavity)."""
        c = CAVITY_OUTLINE
        z = np.asarray(z, dtype=float)
        flat = _superellipse(
            x, y, 0.0, 0.0, c["half_width"], c["anterior"], c["posterior"], c["exponent"], self.cavity_taper(z)
        )
        domed = z > CAVITY_DOME_START_Z
        if not np.any(domed):
            return flat
        if z.ndim == 3 and z.shape[1:] == (1, 1) and not np.all(domed):
            # a grid: the caps only matter in the slices above the dome's base
            out = np.empty(np.broadcast_shapes(z.shape, np.shape(flat)), dtype=np.result_type(flat, np.float32))
            out[...] = flat
            above = domed[:, 0, 0]
            out[above] = np.maximum(out[above], self._apex_caps(x, y, z[above]))
            return out
        return np.maximum(flat, self._apex_caps(x, y, z))

    @staticmethod
    def _apex_caps(x, y, z):
        """Union of the two apical caps: ellipsoids centred at the dome's base (cylinders below)."""
        d = APEX_DOME
        h = np.maximum(z - CAVITY_DOME_START_Z, 0.0) / (LUNG_APEX_Z - CAVITY_DOME_START_Z)
        v = (y - d["y"]) / d["ry"]
        caps = None
        for side in (-1.0, 1.0):
            u = (x - side * d["x"]) / d["rx"]
            cap = (np.sqrt(u * u + v * v + h * h) - 1.0) * d["rx"]
            caps = cap if caps is None else np.minimum(caps, cap)
        return caps

    @staticmethod
    def diaphragm_z(x, y):
        """Height of the diaphragm's upper surface (2D in x, y)."""
        heights = []
        for d in DIAPHRAGM_DOMES:
            dy = y - d["y"]
            ry = np.where(dy < 0, d["ry_anterior"], d["ry_posterior"])
            r2 = ((x - d["x"]) / d["rx"]) ** 2 + (dy / ry) ** 2
            heights.append(d["peak_z"] - d["depth"] * r2)
        # smooth maximum of the two domes
        return -_smooth_min(-heights[0], -heights[1], 20.0)

    def abdomen_field(self, x, y, z):
        """The abdominal cavity under the diaphragm's muscle sheet."""
        return np.maximum(self.cavity_field(x, y, z), z - self.diaphragm_z(x, y) + DIAPHRAGM_THICKNESS_MM)

    # ---- mediastinum ---------------------------------------------------------------
    def _build_mediastinum(self) -> None:
        carina = CARINA_LPS
        trachea = [(0, 6, 400), (0, 8, 60), carina]
        self.trachea = _polyline(trachea, 11.0)
        self.trachea_lumen = _polyline(trachea, 9.0)
        right_bronchus = [carina, (-22, 16, 17), (-42, 17, 7)]
        left_bronchus = [carina, (25, 10, 15), (46, 12, 0)]
        self.bronchi = _polyline(right_bronchus, 8.0) + _polyline(left_bronchus, 7.5)
        self.bronchi_lumen = _polyline(right_bronchus, 6.5) + _polyline(left_bronchus, 6.0)
        self.bronchus_ends = {"right lung": np.array(right_bronchus[-1], float), "left lung": np.array(left_bronchus[-1], float)}
        # ascending aorta from the heart, the arch passing left of the trachea and over the
        # left main bronchus, the descending aorta left-anterolateral of the spine
        self.aorta = _polyline(
            [(0, -15, -35), (-5, -25, 10), (-5, -24, 42), (-2, -18, 58), (12, -14, 68), (26, 8, 66),
             (30, 24, 56), (25, 34, 45), (26, 32, 10), (24, 28, -60), (18, 24, -140), (8, 22, -400)],
            [15, 15, 14, 13, 13, 13, 12.5, 12, 12, 12, 11, 11],
        )
        self.great_vessels = (
            _polyline([(-2, -18, 60), (-15, -15, 100), (-25, -10, 400)], 6.5)  # brachiocephalic trunk
            + _polyline([(6, -12, 66), (10, -5, 400)], 4.5)  # left common carotid
            + _polyline([(24, 6, 68), (30, 10, 110), (36, 12, 400)], 5.0)  # left subclavian
        )
        self.veins = (
            _polyline([(-28, -14, 400), (-33, -20, 75), (-33, -24, 40), (-33, -22, 0), (-31, -16, -25)], [8, 10, 10, 10, 10])
            + _polyline([(35, -35, 110), (-28, -22, 78)], 6.0)  # left brachiocephalic vein
            + _polyline([(-22, 0, -55), (-22, 5, -400)], 12.0)  # inferior vena cava
        )
        self.pulmonary_arteries = (
            _polyline([(10, -45, -25), (15, -30, 5), (15, -15, 18)], 14.0)
            + _polyline([(15, -15, 18), (35, 0, 25), (52, 8, 18)], [11, 11, 9])
            + _polyline([(15, -15, 18), (-10, -5, 15), (-30, -2, 13), (-48, -2, 10)], [11, 11, 10, 9])
        )
        # behind the trachea, in front of the spine, right of the descending aorta, to the stomach
        self.oesophagus = _polyline([(0, 27, 400), (3, 27, 40), (4, 18, -60), (25, -2, -112), (45, -10, -122)], 7.0)
        self.heart = [
            _Ellipsoid((18, -28, -48), (60, 47, 50), angle_deg=35),
            _Ellipsoid((6, 8, -22), (35, 20, 22)),  # left atrium
            _Ellipsoid((-25, -18, -42), (28, 28, 34)),  # right atrium
        ]
        # the lungs' exclusion zone: organs plus a margin of mediastinal fat/pleura
        parts: list[tuple[object, float]] = []
        parts += [(s, 4.0) for s in self.heart]
        parts += [(s, 3.0) for s in self.aorta + self.great_vessels + self.veins[:2] + self.oesophagus]
        parts += [(s, 2.5) for s in self.trachea + self.bronchi + self.pulmonary_arteries]
        parts.append((_EllipticCylinder(0, VERTEBRA["y"], VERTEBRA["rx"], VERTEBRA["ry"], -400, 400), 3.0))
        parts.append((_Box((-26, 50, -400), (26, 200, 400), rounding=6), 0.0))
        # the midline septum, sternum to spine; with lungs_touch it leaves out the anterior junction
        w = SEPTUM_HALF_WIDTH_MM
        if self.lungs_touch:
            j = ANTERIOR_JUNCTION
            parts.append((_Box((-w, j["y_max"], -400), (w, 45, 400), 2), 0.0))
            for z0, z1 in ((-400.0, j["z_min"]), (j["z_max"], 400.0)):
                parts.append((_Box((-w, -100, z0), (w, 45, z1), 2), 0.0))
        else:
            parts.append((_Box((-w, -100, -400), (w, 45, 400), 2), 0.0))
        self.mediastinum_parts = parts

    def mediastinum_field(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Smooth union of the mediastinal parts on the grid of 1D coordinates (zs, ys, xs)."""
        out = np.full((len(zs), len(ys), len(xs)), _BIG, dtype=np.float32)
        k = MEDIASTINUM_SMOOTHING_MM
        for shape, margin in self.mediastinum_parts:
            win = _window_1d(xs, ys, zs, shape.lo - margin - k, shape.hi + margin + k)
            if win is None:
                continue
            sz, sy, sx = win
            f = shape.field(xs[sx][None, None, :], ys[sy][None, :, None], zs[sz][:, None, None]) - margin
            out[sz, sy, sx] = _smooth_min(out[sz, sy, sx], f.astype(np.float32), k)
        return out

    def lung_field(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Both lungs (the pleural cavity less the mediastinum, above the diaphragm), on the grid
        of sorted coordinates xs, ys, zs (1D, or broadcast as (1,1,nx), (1,ny,1), (nz,1,1))."""
        xs, ys, zs = (np.ravel(v) for v in (xs, ys, zs))
        x, y, z = xs[None, None, :], ys[None, :, None], zs[:, None, None]
        f = np.empty((len(zs), len(ys), len(xs)), dtype=np.float32)
        f[...] = self.cavity_field(x, y, z)
        np.maximum(f, self.diaphragm_z(x, y) - z, out=f)
        np.maximum(f, -self.mediastinum_field(xs, ys, zs), out=f)
        return f

    # ---- bones -----------------------------------------------------------------------
    def _build_bones(self) -> None:
        self.ribs, self.rib_marrow, self.cartilage = _ShapeList(), _ShapeList(), _ShapeList()
        for level in range(12):
            z_post = TOP_LEVEL_Z - LEVEL_SPACING_MM * level
            # drop: how much lower the front end is than the head (ribs slope down and forwards)
            if level < 7:  # true ribs reach the sternum through their cartilage
                phi_end, phi_cartilage, drop = -84.0, -58.0, (30.0, 50.0, 70.0, 80.0, 85.0, 85.0, 85.0)[level]
            elif level < 10:  # false ribs join the costal margin
                phi_end, phi_cartilage, drop = -50.0, -30.0, 75.0
            else:  # floating ribs
                phi_end, phi_cartilage, drop = -5.0 if level == 10 else 20.0, None, 40.0
            for side in (-1.0, 1.0):
                bone, cart = self._rib_path(side, z_post, drop, phi_end, phi_cartilage)
                self.ribs += _polyline(bone, RIB_RADIUS_MM)
                self.rib_marrow += _polyline(bone, RIB_RADIUS_MM - RIB_CORTEX_MM)
                if cart is not None:
                    self.cartilage += _polyline(cart, CARTILAGE_RADIUS_MM)
        self.sternum = [
            _Box((-28, -108, 40), (28, -95, 85), rounding=4),  # manubrium
            _Box((-16, -107, -75), (16, -96, 40), rounding=4),  # body
        ]
        self.sternum_marrow = [
            _Box((-26.5, -106.5, 41.5), (26.5, -96.5, 83.5), rounding=2.5),
            _Box((-14.5, -105.5, -73.5), (14.5, -97.5, 38.5), rounding=2.5),
        ]
        v = VERTEBRA
        self.discs = [_EllipticCylinder(0, v["y"], v["rx"] - 0.5, v["ry"] - 0.5, -400, 400)]
        self.vertebral_bodies, self.vertebral_cancellous, self.posterior_arches = _ShapeList(), _ShapeList(), _ShapeList()
        for level in range(-12, 30):  # cervical to lumbar: as far as any field of view reaches
            zc = TOP_LEVEL_Z - LEVEL_SPACING_MM * level - 4.0
            h = 0.5 * v["height"]
            self.vertebral_bodies.append(_EllipticCylinder(0, v["y"], v["rx"], v["ry"], zc - h, zc + h))
            c = v["cortex"]
            self.vertebral_cancellous.append(
                _EllipticCylinder(0, v["y"], v["rx"] - c, v["ry"] - c, zc - h + c, zc + h - c)
            )
            y0 = v["y"] + v["ry"] - 3
            for s in (-1, 1):
                self.posterior_arches += _polyline([(s * 9, y0, zc), (s * 11, 78, zc), (s * 5, 92, zc - 3)], 3.5)
                self.posterior_arches += _polyline([(s * 11, 78, zc + 2), (s * 32, 82, zc + 4)], 4.0)
            self.posterior_arches += _polyline([(0, 92, zc - 3), (0, 116, zc - 18)], [4.5, 3.5])
        self.spinal_canal = [_EllipticCylinder(0, SPINAL_CANAL["y"], SPINAL_CANAL["radius"], SPINAL_CANAL["radius"], -400, 400)]

    def _rib_path(self, side, z_post, drop, phi_end, phi_cartilage):
        """Centreline points of one rib: head at the spine, around the chest wall, forwards and down."""
        # phi: angle round the chest wall, 90 deg posterior (at the spine), -90 anterior
        phi_start, n_bone = 72.0, 28
        if phi_cartilage is None:
            phis = np.linspace(phi_start, phi_end, n_bone)
        else:
            phis = np.concatenate([np.linspace(phi_start, phi_cartilage, n_bone), np.linspace(phi_cartilage, phi_end, 8)[1:]])
        u = (phi_start - phis) / (phi_start - phi_end)  # 0 at the back, 1 at the front end
        z = z_post + 5.0 * np.sin(np.pi * np.clip(u * 2, 0, 1)) - drop * u**1.4
        a, ba, bp = self.cavity_envelope(z)
        offset = RIB_RADIUS_MM + 1.5  # just outside the pleura
        n_exp = CAVITY_OUTLINE["exponent"]
        c, s = np.cos(np.radians(phis)), np.sin(np.radians(phis))
        x = side * (a + offset) * np.abs(c) ** (2 / n_exp)
        y = (np.where(s < 0, ba, bp) + offset) * np.sign(s) * np.abs(s) ** (2 / n_exp)
        head = np.array([[side * 17.0, 60.0, z_post], [side * 31.0, 82.0, z_post + 2.0]])  # at the vertebra
        points = np.concatenate([head, np.stack([x, y, z], axis=1)])
        if phi_cartilage is None:
            return points, None
        split = len(head) + n_bone
        return points[:split], points[split - 1 :]

    # ---- abdomen ---------------------------------------------------------------------
    def _build_abdomen(self) -> None:
        self.liver = [_Ellipsoid((-35, 5, -150), (118, 98, 112), angle_deg=-10)]
        self.spleen = [_Ellipsoid((92, 52, -112), (28, 45, 48), angle_deg=35)]
        self.stomach = [_Ellipsoid((62, -22, -112), (45, 42, 45), angle_deg=-20)]
        self.stomach_gas_below_y = -42.0  # supine: gas rises anteriorly, a flat air-fluid level

    # ---- vessels -----------------------------------------------------------------------
    def _grow_vessels(self, rng: np.random.Generator) -> None:
        roots = []  # (start, direction, side, kind): the direction picks the root's territory
        for side, s in (("right lung", -1.0), ("left lung", 1.0)):
            pa_end = np.array([-48.0, -2.0, 10.0]) if s < 0 else np.array([52.0, 8.0, 18.0])
            for d in ((0.35, -0.15, 0.93), (0.7, -0.6, -0.3), (0.45, 0.35, -0.82), (0.35, 0.8, -0.45)):
                roots.append((pa_end, _norm((s * d[0], d[1], d[2])), side, "artery"))
            atrium = np.array([s * 38.0, 10.0, -22.0])
            for d in ((0.8, -0.35, 0.45), (0.8, 0.25, -0.5), (0.6, -0.7, -0.1)):
                roots.append((atrium, _norm((s * d[0], d[1], d[2])), side, "vein"))
        self.vessels = _ShapeList(_grow_trees(rng, roots, self.depth))
        # bronchi beside the first generations of the arterial trees
        airways: list[_Capsule] = []
        lumens: list[_Capsule] = []
        for side in ("right lung", "left lung"):
            start = self.bronchus_ends[side]
            for seg in self.vessels:
                if seg.tree_kind != "artery" or seg.side != side or seg.generation > 3 or seg.r0 < 1.6:
                    continue
                offset = _perpendicular(seg.axis, np.array([0.0, 1.0, 0.0])) * (seg.r0 * 1.9 + 1.0)
                p0, p1 = seg.p0 + offset, seg.p0 + seg.axis * seg.length + offset
                lumen = 0.85 * seg.r0
                wall = lumen + 0.3 + 0.2 * lumen
                if seg.generation == 0:  # join the main bronchus
                    airways.append(_Capsule(start, p0, 6.5, wall))
                    lumens.append(_Capsule(start, p0, 5.0, lumen))
                airways.append(_Capsule(p0, p1, wall))
                lumens.append(_Capsule(p0, p1, lumen))
        self.lung_airway_walls = _ShapeList(airways)
        self.lung_airway_lumens = _ShapeList(lumens)

    # ---- tumours -----------------------------------------------------------------------
    def _place_tumors(self, rng: np.random.Generator, kinds: tuple[str, ...]) -> list[_Tumor]:
        tumors: list[_Tumor] = []
        first_side = int(rng.integers(2))
        for n, kind in enumerate(kinds):
            side = ("right lung", "left lung")[(n + first_side) % 2]
            tumor = _make_tumor(rng, kind, side, self, tumors)
            if tumor is None:  # no room in that lung: try the other one
                other = "left lung" if side == "right lung" else "right lung"
                tumor = _make_tumor(rng, kind, other, self, tumors)
            if tumor is None:
                raise RuntimeError(f"could not place a {kind} tumour")
            tumors.append(tumor)
        return tumors

    def lung_seeds(self, geometry: VolumeGeometry) -> dict[str, tuple[float, float, float]]:
        """The deepest point of each lung within the field of view, away from the tumours.

        Candidates are the depth lattice's points moved into the box of voxel centres, so a
        thin or cropped volume still gets the deepest lung point it holds.
        """
        first = np.asarray(geometry.origin, float)
        last = first + (np.asarray(geometry.size) - 1) * np.asarray(geometry.spacing)
        points = np.clip(self.depth.points, first, last)
        depth = self.depth(points)
        ok = depth > 3.0
        for t in self.tumors:
            ok &= np.linalg.norm(points - t.centre, axis=1) > t.radius * 1.6 + 10.0
        seeds = {}
        for side, sign in (("right lung", -1.0), ("left lung", 1.0)):
            candidates = ok & (sign * points[:, 0] > 0)
            if candidates.any():
                best = int(np.argmax(np.where(candidates, depth, -np.inf)))
                seeds[side] = tuple(float(v) for v in points[best])
        return seeds


def _perpendicular(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Unit vector perpendicular to ``axis``, as close as possible to ``hint``."""
    v = hint - axis * float(hint @ axis)
    n = np.linalg.norm(v)
    if n < 1e-6:
        v = np.cross(axis, [1.0, 0.0, 0.0])
        n = np.linalg.norm(v)
    return v / n


class _DepthLattice:
    """Signed distance into the lungs (mm, > 0 inside) on a coarse fixed lattice."""

    def __init__(self, anatomy: _Anatomy):
        lo, hi = np.array([-150.0, -100.0, -150.0]), np.array([150.0, 100.0, 135.0])
        step = DEPTH_LATTICE_MM
        self.lo, self.step = lo, step
        self.axes = [np.arange(lo[a], hi[a] + 1e-6, step) for a in range(3)]  # x, y, z
        xs, ys, zs = self.axes
        inside = anatomy.lung_field(xs, ys, zs) <= 0
        self.values = (
            ndi.distance_transform_edt(inside, sampling=step) - ndi.distance_transform_edt(~inside, sampling=step)
        ).astype(np.float32)
        self.values -= np.where(inside, 0.5 * step, -0.5 * step).astype(np.float32)  # surface midway between
        zz, yy, xx = np.meshgrid(zs, ys, xs, indexing="ij")
        self.points = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(points)
        idx = ((p - self.lo) / self.step)[:, ::-1].T  # (z, y, x) fractional indices
        return ndi.map_coordinates(self.values, idx, order=1, mode="nearest")

    def gradient(self, points: np.ndarray) -> np.ndarray:
        """Unit direction of increasing depth (towards the lung's inside)."""
        p = np.atleast_2d(points)
        h = self.step
        g = np.stack([self(p + e) - self(p - e) for e in np.eye(3) * h], axis=1)
        n = np.linalg.norm(g, axis=1, keepdims=True)
        return g / np.maximum(n, 1e-6)


class _Segment(_Capsule):
    __slots__ = ("generation", "side", "tree_kind")


def _grow_trees(rng: np.random.Generator, roots, depth: _DepthLattice) -> list[_Segment]:
    """Vessel trees that fill the lungs, grown by splitting territories.

    Each tree system (one lung, arteries or veins) gets a random sample of points inside the
    lung; each root takes the points lying in its direction from its start. A branch runs from
    its start halfway to its territory's centroid, then splits the territory in two along its
    longest axis (unequally, like real asymmetric branching) and each part continues from
    there. Radii follow Murray's law, r^3 proportional to the points served, scaled so that a
    terminal branch (VESSEL_POINTS_PER_TERMINAL points) has VESSEL_MIN_RADIUS_MM. All
    territories of a generation are processed at once.
    """
    n_min = VESSEL_POINTS_PER_TERMINAL
    radius_unit = VESSEL_MIN_RADIUS_MM / n_min ** (1 / 3)
    lattice_points, lattice_depth = depth.points, depth.values.ravel()
    points, owner, starts, root_info = [], [], [], []
    for side, sign in (("right lung", -1.0), ("left lung", 1.0)):
        candidates = lattice_points[(lattice_depth > 1.5) & (sign * lattice_points[:, 0] > 0)]
        for kind in ("artery", "vein"):
            group = [r for r in roots if r[2] == side and r[3] == kind]
            n = min(len(candidates), VESSEL_POINTS_PER_SYSTEM)
            sample = candidates[rng.choice(len(candidates), n, replace=False)]
            sample = sample + rng.uniform(-0.5, 0.5, sample.shape) * DEPTH_LATTICE_MM
            cosines = np.stack([_norm(sample - r[0]) @ r[1] for r in group], axis=1)
            nearest = np.argmax(cosines, axis=1)
            for m, r in enumerate(group):
                points.append(sample[nearest == m])
                owner.append(np.full(int(np.sum(nearest == m)), len(starts)))
                starts.append(r[0])
                root_info.append((side, kind))
    points = np.concatenate(points)
    owner = np.concatenate(owner)
    starts = np.asarray(starts, dtype=float)
    info = np.arange(len(starts))  # each territory's root, for side and kind
    segments: list[_Segment] = []
    generation = 0
    while len(starts):
        t = len(starts)
        counts = np.bincount(owner, minlength=t).astype(float)
        alive = counts >= n_min
        safe = np.maximum(counts, 1.0)
        centroid = np.stack([np.bincount(owner, points[:, a], minlength=t) for a in range(3)], axis=1) / safe[:, None]
        radius = radius_unit * safe ** (1 / 3)
        splits = counts >= 2 * n_min
        fraction = np.where(splits, 0.5, 0.85)
        ends = starts + fraction[:, None] * (centroid - starts)
        # a centroid outside the lung (a territory curving round the heart): end at the
        # territory's point nearest to it instead
        outside = alive & (depth(ends) < 0.5 * radius + 0.5)
        if outside.any():
            dist = np.linalg.norm(points - centroid[owner], axis=1)
            order = np.lexsort((dist, owner))
            first = np.searchsorted(owner[order], np.arange(t))
            nearest = order[np.minimum(first, len(order) - 1)]
            ends[outside] = points[nearest[outside]]
        for n in np.flatnonzero(alive):
            seg = _Segment(starts[n], ends[n], radius[n])
            seg.generation = generation
            seg.side, seg.tree_kind = root_info[info[n]]
            segments.append(seg)
        # split each territory at a random quantile of its points along its principal axis
        offsets = points - centroid[owner]
        cov = np.zeros((t, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                cov[:, a, b] = cov[:, b, a] = np.bincount(owner, offsets[:, a] * offsets[:, b], minlength=t)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        projection = np.einsum("ij,ij->i", offsets, axis[owner])
        order = np.lexsort((projection, owner))
        group_start = np.searchsorted(owner[order], np.arange(t))
        rank = np.empty(len(owner), dtype=int)
        rank[order] = np.arange(len(owner)) - group_start[owner[order]]
        share = rng.uniform(0.3, 0.5, t)
        cut = np.clip(np.rint(share * counts), n_min, counts - n_min)
        child = (rank >= cut[owner]).astype(int)
        keep = splits[owner]
        parent_ids = np.flatnonzero(splits)
        new_id = np.full(t, -1)
        new_id[parent_ids] = np.arange(len(parent_ids))
        points = points[keep]
        owner = 2 * new_id[owner[keep]] + child[keep]
        starts = np.repeat(ends[parent_ids], 2, axis=0)
        info = np.repeat(info[parent_ids], 2)
        generation += 1
    return segments


def _make_tumor(rng, kind: str, side: str, anatomy: _Anatomy, others: list[_Tumor]) -> _Tumor | None:
    """Place one tumour of ``kind`` in the lung ``side``, away from the others."""
    depth = anatomy.depth
    sign = -1.0 if side == "right lung" else 1.0
    radius = {
        "solid": (8.0, 14.0), "part-solid": (10.0, 16.0), "ground-glass": (8.0, 13.0),
        "spiculated": (8.0, 12.0), "juxta-pleural": (10.0, 15.0), "juxta-vascular": (7.0, 11.0),
        "pleural-mass": (15.0, 30.0),
    }[kind]
    radius = float(rng.uniform(*radius))
    pts, d = depth.points, depth.values.ravel()
    free = np.ones(len(pts), bool)
    for t in others:
        free &= np.linalg.norm(pts - t.centre, axis=1) > radius + t.radius * 1.8 + 10.0
    in_side = sign * pts[:, 0] > 20.0
    # stay clear of the diaphragm domes and the apex, where slices cut tumours obliquely
    in_z = (pts[:, 2] > -70.0) & (pts[:, 2] < 90.0)

    if kind in ("juxta-pleural", "pleural-mass"):
        # centre half a radius inside the costal pleura: nearest boundary is the lateral wall
        band = np.abs(d - 0.5 * radius) < 0.5 * DEPTH_LATTICE_MM
        cand = np.flatnonzero(band & free & in_side & in_z & (np.abs(pts[:, 0]) > 70.0))
        rng.shuffle(cand)
        for n in cand[:200]:
            p = pts[n]
            inward = depth.gradient(p)[0]
            if inward[0] * sign > -0.6:  # the wall must be lateral (inside is towards the midline)
                continue
            # the rest of the tumour must be in the lung: deep enough on the medial side
            if depth(p + inward * (radius + 4.0))[0] < radius:
                continue
            tumor = _Tumor(kind, side, p, radius)
            tumor.layers.append(([_Lesion(rng, p, radius, 0.05)], HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU))
            return tumor
        return None

    if kind == "juxta-vascular":
        segs = [s for s in anatomy.vessels if s.side == side and 1.5 <= s.r0 <= 3.5 and s.length > 6]
        order = rng.permutation(len(segs))
        for n in order[:400]:
            seg = segs[n]
            mid = seg.p0 + seg.axis * 0.5 * seg.length
            perp = _perpendicular(seg.axis, rng.standard_normal(3))
            centre = mid + perp * (radius + seg.r0 - 0.8)
            if not (-70 < centre[2] < 90) or sign * centre[0] < 20:
                continue
            if depth(centre)[0] < radius + 6.0:
                continue
            if any(np.linalg.norm(centre - t.centre) < radius + t.radius * 1.8 + 10.0 for t in others):
                continue
            tumor = _Tumor(kind, side, centre, radius)
            tumor.layers.append(([_Lesion(rng, centre, radius, 0.05)], HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU))
            return tumor
        return None

    reach = {"spiculated": 2.1}.get(kind, 1.15)  # how far the tumour reaches, in radii
    cand = np.flatnonzero((d > radius * reach + 5.0) & free & in_side & in_z)
    if len(cand) == 0:
        return None
    centre = pts[rng.choice(cand)] + rng.uniform(-1.0, 1.0, 3)
    tumor = _Tumor(kind, side, centre, radius)
    tumor.layers.extend(_free_tumor_layers(rng, kind, centre, radius))
    return tumor


def _free_tumor_layers(rng, kind: str, centre, radius: float) -> list[tuple[list, float, str, float]]:
    """The painted layers of a tumour that touches nothing: solid, ground-glass, part-solid
    or spiculated, at ``centre`` with nominal ``radius`` (mm)."""
    if kind == "solid":
        return [([_Lesion(rng, centre, radius, 0.06)], HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU)]
    if kind == "ground-glass":
        return [([_Lesion(rng, centre, radius, 0.08)], HU_TUMOR_GGO, "raise", TUMOR_GGO_TEXTURE_HU)]
    if kind == "part-solid":
        halo = _Lesion(rng, centre, radius, 0.08)
        core_centre = centre + _norm(rng.standard_normal(3)) * radius * rng.uniform(0.0, 0.2)
        core = _Lesion(rng, core_centre, radius * rng.uniform(0.4, 0.55), 0.08)
        return [([halo], HU_TUMOR_GGO_HALO, "raise", TUMOR_GGO_TEXTURE_HU),
                ([core], HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU)]
    if kind == "spiculated":
        body = _Lesion(rng, centre, radius, 0.12)
        spicules = []  # tapering strands radiating from the surface into the lung
        for _ in range(int(rng.integers(14, 23))):
            u = _norm(rng.standard_normal(3))
            tip_dir = _norm(u + 0.25 * rng.standard_normal(3))
            length = radius * rng.uniform(0.6, 1.1)
            spicules.append(_Capsule(centre + u * radius * 0.7, centre + tip_dir * (radius + length), rng.uniform(1.4, 2.2), 0.4))
        return [([body] + spicules, HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU)]
    raise ValueError(f"not a free-standing tumour kind: {kind!r}")


FREE_TUMOR_KINDS = ("solid", "part-solid", "ground-glass", "spiculated")


def tumor_shape(kind: str, radius_mm: float, seed: int):
    """A random tumour shape of ``kind`` centred at the origin, as the thorax draws them:
    returns (field, extent_mm), where ``field(x, y, z)`` (mm, LPS) is ≤ 0 inside (the union
    of its shapes) and the shape lies within ±extent_mm of the origin. For making fine
    truths of any resolution (the 3D reconstruction's training and benchmark)."""
    rng = np.random.default_rng(seed)
    layers = _free_tumor_layers(rng, kind, np.zeros(3), float(radius_mm))
    shapes = [shape for layer_shapes, *_ in layers for shape in layer_shapes]
    extent = float(max(np.abs(np.concatenate([sh.lo, sh.hi])).max() for sh in shapes))

    def field(x, y, z):
        out = shapes[0].field(x, y, z)
        for shape in shapes[1:]:
            out = np.minimum(out, shape.field(x, y, z))
        return out

    return field, extent


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


# =======================================================================================
# Rendering on the voxel grid.


def _occupancy_from_field(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partial volume and inside-mask from a field sampled one voxel beyond the window.

    The fraction of the voxel inside is 1/2 - f / w, clipped to [0, 1], where w is the change
    of f across one voxel along the surface normal (from central differences): the voxel's
    width seen across the surface, whatever the field's scale and the voxel's anisotropy.
    Axes of length 1 are constant (a 2D shape broadcast along them).
    """
    core = tuple(slice(1, -1) if n > 1 else slice(None) for n in padded.shape)
    f = padded[core]
    w2 = np.zeros(f.shape, dtype=np.float32)
    for axis, n in enumerate(padded.shape):
        if n == 1:
            continue
        hi, lo = list(core), list(core)
        hi[axis], lo[axis] = slice(2, None), slice(None, -2)
        d = padded[tuple(hi)] - padded[tuple(lo)]
        w2 += d * d
    w = np.sqrt(w2) * np.float32(0.5)
    np.maximum(w, np.float32(1e-3), out=w)
    occupancy = np.float32(0.5) - f / w
    np.clip(occupancy, 0.0, 1.0, out=occupancy)
    return occupancy, f <= 0


def _tube_occupancy(capsule: _Capsule, x, y, z, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Partial volume of a tube: a linear ramp across the voxel's width normal to the tube.

    A tube thinner than half that width is drawn with the width's radius and its contrast
    scaled by (r / r_drawn)^2, which keeps its cross-section's integral (partial volume of thin
    vessels) instead of drawing a half-grey line.
    """
    dx, dy, dz, radius = capsule.offsets(x, y, z)
    t = np.sqrt(dx * dx + dy * dy + dz * dz)
    inv = 1.0 / np.maximum(t, 1e-6)
    sx, sy, sz = spacing
    w = np.sqrt((dx * inv * sx) ** 2 + (dy * inv * sy) ** 2 + (dz * inv * sz) ** 2)
    np.maximum(w, min(spacing), out=w)
    drawn = np.maximum(radius, 0.5 * w)
    occupancy = np.clip(0.5 - (t - drawn) / w, 0.0, 1.0) * (radius / drawn) ** 2
    return occupancy.astype(np.float32), t <= radius


class _Canvas:
    """HU and labels of slices k0..k1 of the output grid, with helpers to paint shapes."""

    def __init__(self, geometry: VolumeGeometry, k0: int, k1: int, label_names: Sequence[str]):
        self.origin = np.asarray(geometry.origin, float)
        self.spacing = np.asarray(geometry.spacing, float)
        ni, nj, _ = geometry.size
        self.k0, self.k1 = k0, k1
        self.shape = (k1 - k0, nj, ni)
        self.index_stop = np.array([ni, nj, k1])
        self.index_start = np.array([0, 0, k0])
        self.hu = np.full(self.shape, HU_AIR, dtype=np.float32)
        self.scratch = np.zeros(self.shape, dtype=np.float32)
        self.labels = {name: np.zeros(self.shape, dtype=bool) for name in label_names}

    def window(self, lo, hi) -> tuple[slice, slice, slice] | None:
        """Local (k, j, i) slices of the voxels whose centres lie in the box [lo, hi] (x, y, z)."""
        first = np.ceil((np.asarray(lo) - self.origin) / self.spacing - 1e-9).astype(int)
        last = np.floor((np.asarray(hi) - self.origin) / self.spacing + 1e-9).astype(int) + 1
        first = np.maximum(first, self.index_start)
        last = np.minimum(last, self.index_stop)
        if np.any(last <= first):
            return None
        return (
            slice(first[2] - self.k0, last[2] - self.k0),
            slice(first[1], last[1]),
            slice(first[0], last[0]),
        )

    def coords(self, win, pad: int = 0):
        """1D coordinates (xs, ys, zs) of a window's voxel centres, ``pad`` voxels beyond each side."""
        sk, sj, si = win
        xs = self.origin[0] + self.spacing[0] * np.arange(si.start - pad, si.stop + pad)
        ys = self.origin[1] + self.spacing[1] * np.arange(sj.start - pad, sj.stop + pad)
        zs = self.origin[2] + self.spacing[2] * np.arange(sk.start + self.k0 - pad, sk.stop + self.k0 + pad)
        return xs, ys, zs

    def _overlapping(self, shapes: Sequence) -> Sequence:
        """The shapes whose box reaches this slab's slices (one vectorised test for long lists)."""
        if not isinstance(shapes, _ShapeList):
            return shapes
        z_lo, z_hi = shapes.z_extents()
        pad = float(self.spacing.max())
        z0 = self.origin[2] + self.spacing[2] * self.k0 - pad
        z1 = self.origin[2] + self.spacing[2] * (self.k1 - 1) + pad
        return [shapes[n] for n in np.flatnonzero((z_lo <= z1) & (z_hi >= z0))]

    def margin(self, extra_mm: float = 0.0) -> np.ndarray:
        """Padding of a shape's box: its partial-volume ramp reaches a voxel width out."""
        return np.full(3, float(self.spacing.max()) + extra_mm)

    def blend(self, win, occupancy, value, mode: str = "over") -> None:
        """Composite ``value`` over the HU with the given occupancy; "raise" only brightens
        (ground glass over vessels keeps the vessels)."""
        hu = self.hu[win]
        delta = value - hu
        if mode == "raise":
            np.maximum(delta, 0.0, out=delta)
        delta *= occupancy
        hu += delta

    def paint(
        self,
        shapes: Sequence,
        value: float | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
        label: str | None = None,
        mode: str = "over",
        clip: Callable | None = None,
        count: Callable[[np.ndarray, tuple], None] | None = None,
    ) -> None:
        """Paint the union of ``shapes`` with one tissue.

        ``value`` is HU, a function of the window's coordinates (xs, ys, zs) giving HU, or
        None to set the label (and ``count``) only.
        ``clip``, a field function like a shape's, intersects the shapes with another region
        (occupancies multiply, insides intersect).
        """
        lo_all, hi_all = None, None
        pad = self.margin()
        touched = []
        for shape in self._overlapping(shapes):
            win = self.window(shape.lo - pad, shape.hi + pad)
            if win is None:
                continue
            if isinstance(shape, _Capsule):
                xs, ys, zs = self.coords(win)
                occ, inside = _tube_occupancy(shape, xs[None, None, :], ys[None, :, None], zs[:, None, None], self.spacing)
            else:
                xs, ys, zs = self.coords(win, pad=1)
                f = shape.field(xs[None, None, :], ys[None, :, None], zs[:, None, None])
                occ, inside = _occupancy_from_field(np.asarray(f, dtype=np.float32))
                occ = np.broadcast_to(occ, self.scratch[win].shape)
                inside = np.broadcast_to(inside, occ.shape)
            np.maximum(self.scratch[win], occ, out=self.scratch[win])
            if label is not None or count is not None or clip is not None:
                touched.append((win, inside))
            lo_i = np.array([s.start for s in win])
            hi_i = np.array([s.stop for s in win])
            lo_all = lo_i if lo_all is None else np.minimum(lo_all, lo_i)
            hi_all = hi_i if hi_all is None else np.maximum(hi_all, hi_i)
        if lo_all is None:
            return
        union = tuple(slice(a, b) for a, b in zip(lo_all, hi_all))
        occ = self.scratch[union]
        clip_inside = None
        if clip is not None:
            xs, ys, zs = self.coords(union, pad=1)
            clip_field = clip(xs[None, None, :], ys[None, :, None], zs[:, None, None])
            clip_occ, clip_inside = _occupancy_from_field(np.asarray(clip_field, dtype=np.float32))
            occ *= clip_occ
        if value is not None:
            v = value(*self.coords(union)) if callable(value) else np.float32(value)
            self.blend(union, occ, v, mode)
        occ[...] = 0.0
        if touched:
            inside_union = np.zeros(occ.shape, dtype=bool)
            for win, inside in touched:
                local = tuple(slice(w.start - u.start, w.stop - u.start) for w, u in zip(win, union))
                inside_union[local] |= inside
            if clip_inside is not None:
                inside_union &= clip_inside
            if label is not None:
                self.labels[label][union] |= inside_union
            if count is not None:
                count(inside_union, union)


class _Field:
    """A shape given by any field function, within a (default: unbounded) box."""

    def __init__(self, fn, lo=(-1e4, -1e4, -1e4), hi=(1e4, 1e4, 1e4)):
        self.field, self.lo, self.hi = fn, np.asarray(lo, float), np.asarray(hi, float)


class _Renderer:
    """Draws the anatomy on the output grid, slab by slab, then blurs and adds noise."""

    LABELS = ("right lung", "left lung", "tumor", "airways", "body", "ribs", "aorta")

    def __init__(self, anatomy: _Anatomy, geometry: VolumeGeometry, seed: int, noise_hu: float, blur_mm: float):
        self.anatomy, self.geometry = anatomy, geometry
        self.seed, self.noise_hu, self.blur_mm = seed, noise_hu, blur_mm
        self.spacing = np.asarray(geometry.spacing, float)

    def render(self) -> tuple[np.ndarray, dict[str, np.ndarray], list[int]]:
        g = self.geometry
        ni, nj, nk = g.size
        ct = np.empty((nk, nj, ni), dtype=np.int16)
        labels = {name: np.zeros((nk, nj, ni), dtype=bool) for name in self.LABELS}
        tumor_voxels = [0] * len(self.anatomy.tumors)
        sigma = self.blur_mm / self.spacing[::-1]  # (k, j, i) voxels
        halo = int(3.0 * sigma[0] + 0.5) + 1 if self.blur_mm > 0 else 0
        slab = max(1, SLAB_VOXELS // (ni * nj))
        for k0 in range(0, nk, slab):
            k1 = min(nk, k0 + slab)
            r0, r1 = max(0, k0 - halo), min(nk, k1 + halo)
            canvas = _Canvas(g, r0, r1, self.LABELS)
            self._paint(canvas, core=(k0, k1), tumor_voxels=tumor_voxels)
            hu = canvas.hu
            if self.blur_mm > 0:
                hu = ndi.gaussian_filter(hu, sigma, mode="nearest", truncate=3.0)
            core = slice(k0 - r0, k1 - r0)
            hu = hu[core]
            if self.noise_hu > 0:
                hu += self._noise(k0, k1)
            np.clip(hu, *HU_CLIP, out=hu)
            ct[k0:k1] = np.rint(hu).astype(np.int16)
            for name in self.LABELS:
                labels[name][k0:k1] = canvas.labels[name][core]
        return ct, labels, tumor_voxels

    def _noise(self, k0: int, k1: int) -> np.ndarray:
        """Correlated Gaussian noise of standard deviation noise_hu, one random stream per slice
        (so the result does not depend on the slab size)."""
        ni, nj, _ = self.geometry.size
        grain = NOISE_GRAIN_MM / self.spacing[[1, 0]]  # (j, i) voxels
        gain = 1.0
        for s in grain:  # std of filtered white noise: sqrt of the sum of the squared kernel
            impulse = np.zeros(63, dtype=np.float64)
            impulse[31] = 1.0
            gain *= float(np.sqrt(np.sum(ndi.gaussian_filter1d(impulse, s, truncate=3.0) ** 2)))
        out = np.empty((k1 - k0, nj, ni), dtype=np.float32)
        for k in range(k0, k1):
            white = np.random.default_rng([self.seed, 7, k]).standard_normal((nj, ni), dtype=np.float32)
            out[k - k0] = ndi.gaussian_filter(white, grain, mode="wrap", truncate=3.0)
        out *= np.float32(self.noise_hu / gain)
        return out

    def _paint(self, c: _Canvas, core: tuple[int, int], tumor_voxels: list[int]) -> None:
        a = self.anatomy
        b = BODY_OUTLINE

        def outline(inset_lat, inset_ant, inset_post):
            return _Field(
                lambda x, y, z: _superellipse(
                    x, y, 0.0, 0.0, b["half_width"] - inset_lat, b["anterior"] - inset_ant, b["posterior"] - inset_post, b["exponent"]
                )
            )

        # chest wall: skin, subcutaneous fat, muscle
        c.paint([outline(0, 0, 0)], HU_SKIN, label="body")
        c.paint([outline(SKIN_MM, SKIN_MM, SKIN_MM)], HU_FAT)
        fi = FAT_INSET
        c.paint([outline(fi["lateral"], fi["anterior"], fi["posterior"])], HU_MUSCLE)
        # thoracic and abdominal cavity: fat, then the organs in it
        c.paint([_Field(a.cavity_field)], HU_MEDIASTINAL_FAT)
        below_diaphragm = _Field(lambda x, y, z: np.maximum(a.cavity_field(x, y, z), z - a.diaphragm_z(x, y)), hi=(1e4, 1e4, -40))
        c.paint([below_diaphragm], HU_MUSCLE)  # the diaphragm's muscle sheet
        c.paint([_Field(a.abdomen_field, hi=(1e4, 1e4, -40))], HU_FAT)
        c.paint(a.liver, HU_LIVER, clip=a.abdomen_field)
        c.paint(a.spleen, HU_SPLEEN, clip=a.abdomen_field)
        c.paint(a.stomach, HU_STOMACH, clip=a.abdomen_field)
        gas_level = a.stomach_gas_below_y
        lumen = [_Ellipsoid(s.centre, s.semi - 3.0, s.angle_deg) for s in a.stomach]  # inside a 3 mm wall
        # supine: the gas rises anteriorly, above a flat air-fluid level
        c.paint(lumen, HU_AIR, clip=lambda x, y, z: np.maximum(a.abdomen_field(x, y, z), y - gas_level))

        self._paint_lungs(c)

        # mediastinum
        c.paint(a.heart, HU_HEART)
        c.paint(a.veins, HU_BLOOD)
        c.paint(a.pulmonary_arteries, HU_BLOOD)
        c.paint(a.great_vessels, HU_AORTA)
        c.paint(a.aorta, HU_AORTA, label="aorta")
        c.paint(a.oesophagus, HU_OESOPHAGUS)
        c.paint(a.trachea + a.bronchi, HU_AIRWAY_WALL)
        c.paint(a.trachea_lumen + a.bronchi_lumen, HU_AIR, label="airways")

        # lungs: vessels, bronchi, tumours
        c.paint(a.vessels, HU_BLOOD)
        c.paint(a.lung_airway_walls, HU_AIRWAY_WALL)
        c.paint(a.lung_airway_lumens, HU_AIR)
        for n, tumor in enumerate(a.tumors):
            self._paint_tumor(c, tumor, n, core, tumor_voxels)

        # bones
        c.paint(a.ribs, HU_CORTICAL_BONE, label="ribs")
        c.paint(a.rib_marrow, HU_RIB_MARROW)
        c.paint(a.cartilage, HU_CARTILAGE)
        c.paint(a.sternum, HU_CORTICAL_BONE)
        c.paint(a.sternum_marrow, HU_RIB_MARROW)
        c.paint(a.discs, HU_DISC)
        c.paint(a.vertebral_bodies, HU_VERTEBRA_CORTEX)
        c.paint(a.vertebral_cancellous, HU_VERTEBRA_CANCELLOUS)
        c.paint(a.posterior_arches, HU_POSTERIOR_ARCH)
        c.paint(a.spinal_canal, HU_CANAL)

    def _paint_lungs(self, c: _Canvas) -> None:
        a = self.anatomy
        reach = 1.0 + CAVITY_TAPER
        lo = np.array([-CAVITY_OUTLINE["half_width"] * reach, -CAVITY_OUTLINE["anterior"] * reach, -200.0]) - c.margin()
        hi = np.array([CAVITY_OUTLINE["half_width"] * reach, CAVITY_OUTLINE["posterior"] * reach, LUNG_APEX_Z]) + c.margin()
        win = c.window(lo, hi)
        if win is None:
            return
        xs, ys, zs = c.coords(win, pad=1)
        occ, inside = _occupancy_from_field(a.lung_field(xs, ys, zs))
        xs, ys, zs = xs[1:-1], ys[1:-1], zs[1:-1]
        value = a.texture(xs, ys, zs)
        value *= np.float32(PARENCHYMA_TEXTURE_HU)
        value += (HU_PARENCHYMA + PARENCHYMA_GRAVITY_HU * ys / CAVITY_OUTLINE["posterior"]).astype(np.float32)[None, :, None]
        c.blend(win, occ, value)
        right = xs < 0
        c.labels["right lung"][win] |= inside & right[None, None, :]
        c.labels["left lung"][win] |= inside & ~right[None, None, :]
        if a.lungs_touch:
            self._paint_junction_line(c)

    def _paint_junction_line(self, c: _Canvas) -> None:
        """The anterior junction line: two pleural layers, thinner than a voxel, drawn with the
        thin-structure rule (a voxel wide, contrast scaled to keep its integral)."""
        j = ANTERIOR_JUNCTION
        win = c.window(np.array([0.0, -200.0, j["z_min"]]) - c.margin(), np.array([0.0, j["y_max"], j["z_max"]]) + c.margin())
        if win is None:
            return
        xs, ys, zs = c.coords(win)
        half, width = JUNCTION_LINE_HALF_MM, float(c.spacing[0])
        drawn = max(half, 0.5 * width)
        across = np.clip(0.5 - (np.abs(xs) - drawn) / width, 0.0, 1.0) * (half / drawn)
        in_lung = self.anatomy.lung_field(xs, ys, zs) <= 0
        in_box = ((ys <= j["y_max"])[None, :, None]) & ((zs >= j["z_min"]) & (zs <= j["z_max"]))[:, None, None]
        occ = (across[None, None, :] * (in_lung & in_box)).astype(np.float32)
        c.blend(win, occ, np.float32(HU_JUNCTION_LINE))

    def _paint_tumor(self, c: _Canvas, tumor: _Tumor, n: int, core: tuple[int, int], tumor_voxels: list[int]) -> None:
        a = self.anatomy

        def count(inside: np.ndarray, win) -> None:
            k_lo = max(core[0], c.k0 + win[0].start)
            k_hi = min(core[1], c.k0 + win[0].stop)
            if k_hi > k_lo:
                tumor_voxels[n] += int(inside[k_lo - c.k0 - win[0].start : k_hi - c.k0 - win[0].start].sum())

        # count once over the union of all layers
        everything = tumor.shapes
        c.paint(everything, None, label="tumor", clip=a.lung_field, count=count)
        for shapes, hu, mode, texture_hu in tumor.layers:
            def value(xs, ys, zs, hu=hu, texture_hu=texture_hu):
                # texture from another part of the lattice than the lung's own (mirrored x)
                tex = a.texture(-xs[::-1], ys, zs)[:, :, ::-1]
                return np.float32(hu) + np.float32(texture_hu) * tex

            c.paint(shapes, value, mode=mode, clip=a.lung_field)
