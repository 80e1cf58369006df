"""The synthetic thorax's anatomy: organs, airways and vessel trees grown by Murray's law."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry

from .synthetic_parameters import (
    _BIG,
    ANATOMY_BOX,
    ANTERIOR_JUNCTION,
    APEX_DOME,
    CARINA_LPS,
    CARTILAGE_RADIUS_MM,
    CAVITY_DOME_START_Z,
    CAVITY_OUTLINE,
    CAVITY_TAPER,
    CAVITY_TAPER_MM,
    DEPTH_LATTICE_MM,
    DIAPHRAGM_DOMES,
    DIAPHRAGM_THICKNESS_MM,
    LEVEL_SPACING_MM,
    LUNG_APEX_Z,
    MEDIASTINUM_SMOOTHING_MM,
    RIB_CORTEX_MM,
    RIB_RADIUS_MM,
    SEPTUM_HALF_WIDTH_MM,
    SPINAL_CANAL,
    TEXTURE_STEP_MM,
    TOP_LEVEL_Z,
    VERTEBRA,
    VESSEL_MIN_RADIUS_MM,
    VESSEL_POINTS_PER_SYSTEM,
    VESSEL_POINTS_PER_TERMINAL,
)
from .synthetic_shapes import (
    _Box,
    _Capsule,
    _Ellipsoid,
    _EllipticCylinder,
    _norm,
    _perpendicular,
    _polyline,
    _ShapeList,
    _smooth_min,
    _superellipse,
    _Tumor,
    _ValueNoise,
    _window_1d,
)
from .synthetic_tumors import _make_tumor


class _Anatomy:
    """All analytic structures of one case (fixed thorax, seeded vessels and tumours)."""

    def __init__(self, seed: int, lungs_touch: bool, tumor_kinds: tuple[str, ...],
                 tumor_radii: tuple[float | None, ...] | None = None):
        self.lungs_touch = lungs_touch
        self._build_mediastinum()
        self._build_bones()
        self._build_abdomen()
        # Random parts, each from its own stream so that adding a tumour leaves the vessels.
        texture_rng, vessel_rng, tumor_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        self.texture = _ValueNoise(texture_rng, ANATOMY_BOX[0], ANATOMY_BOX[1], TEXTURE_STEP_MM)
        self.depth = _DepthLattice(self)
        self._grow_vessels(vessel_rng)
        self.tumors = self._place_tumors(tumor_rng, tumor_kinds, tumor_radii or (None,) * len(tumor_kinds))

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
    def _place_tumors(self, rng: np.random.Generator, kinds: tuple[str, ...],
                      radii: tuple[float | None, ...]) -> list[_Tumor]:
        tumors: list[_Tumor] = []
        first_side = int(rng.integers(2))
        for n, (kind, radius) in enumerate(zip(kinds, radii)):
            side = ("right lung", "left lung")[(n + first_side) % 2]
            tumor = _make_tumor(rng, kind, side, self, tumors, radius)
            if tumor is None:  # no room in that lung: try the other one
                other = "left lung" if side == "right lung" else "right lung"
                tumor = _make_tumor(rng, kind, other, self, tumors, radius)
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


def _root_territories(rng: np.random.Generator, roots, depth: _DepthLattice):
    """A random sample of points in each lung, each taken by the root it lies in the direction of."""
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
    return np.concatenate(points), np.concatenate(owner), np.asarray(starts, dtype=float), root_info


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
    points, owner, starts, root_info = _root_territories(rng, roots, depth)
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


