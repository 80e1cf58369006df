"""Rendering the synthetic thorax's shapes onto a voxel grid: partial volume, blur, noise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry

from .synthetic_parameters import (
    ANTERIOR_JUNCTION,
    BODY_OUTLINE,
    CAVITY_OUTLINE,
    CAVITY_TAPER,
    FAT_INSET,
    HU_AIR,
    HU_AIRWAY_WALL,
    HU_AORTA,
    HU_BLOOD,
    HU_CANAL,
    HU_CARTILAGE,
    HU_CLIP,
    HU_CORTICAL_BONE,
    HU_DISC,
    HU_FAT,
    HU_HEART,
    HU_JUNCTION_LINE,
    HU_LIVER,
    HU_MEDIASTINAL_FAT,
    HU_MUSCLE,
    HU_OESOPHAGUS,
    HU_PARENCHYMA,
    HU_POSTERIOR_ARCH,
    HU_RIB_MARROW,
    HU_SKIN,
    HU_SPLEEN,
    HU_STOMACH,
    HU_VERTEBRA_CANCELLOUS,
    HU_VERTEBRA_CORTEX,
    JUNCTION_LINE_HALF_MM,
    LUNG_APEX_Z,
    NOISE_GRAIN_MM,
    PARENCHYMA_GRAVITY_HU,
    PARENCHYMA_TEXTURE_HU,
    SKIN_MM,
    SLAB_VOXELS,
)
from .synthetic_shapes import _Capsule, _Ellipsoid, _ShapeList, _superellipse, _Tumor

if TYPE_CHECKING:
    from .synthetic_anatomy import _Anatomy

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

    def __init__(self, anatomy: _Anatomy, geometry: VolumeGeometry, seed: int, noise_hu: float, blur_mm: float,
                 noise_grain_mm: float = NOISE_GRAIN_MM):
        self.anatomy, self.geometry = anatomy, geometry
        self.seed, self.noise_hu, self.blur_mm, self.noise_grain_mm = seed, noise_hu, blur_mm, noise_grain_mm
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
        grain = self.noise_grain_mm / self.spacing[[1, 0]]  # (j, i) voxels
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
        for shapes, hu, mode, texture_hu in tumor.surroundings + tumor.layers:
            def value(xs, ys, zs, hu=hu, texture_hu=texture_hu):
                # texture from another part of the lattice than the lung's own (mirrored x)
                tex = a.texture(-xs[::-1], ys, zs)[:, :, ::-1]
                return np.float32(hu) + np.float32(texture_hu) * tex

            c.paint(shapes, value, mode=mode, clip=a.lung_field)
