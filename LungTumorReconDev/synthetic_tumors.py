"""Tumours of the synthetic thorax: kinds, placement and shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .synthetic_parameters import (
    DENSE_LUNG_SHARE,
    DENSE_LUNG_TEXTURE_HU,
    DEPTH_LATTICE_MM,
    HU_DENSE_LUNG,
    HU_TUMOR_GGO,
    HU_TUMOR_GGO_HALO,
    HU_TUMOR_SOLID,
    TUMOR_GGO_TEXTURE_HU,
    TUMOR_SOLID_TEXTURE_HU,
)
from .synthetic_shapes import _Capsule, _Lesion, _norm, _perpendicular, _Tumor

if TYPE_CHECKING:
    from .synthetic_anatomy import _Anatomy

RADIUS_RANGES_MM = {
    "solid": (8.0, 14.0), "part-solid": (10.0, 16.0), "ground-glass": (8.0, 13.0),
    "spiculated": (8.0, 12.0), "juxta-pleural": (10.0, 15.0), "juxta-vascular": (7.0, 11.0),
    "pleural-mass": (15.0, 30.0), "attached-mass": (10.0, 50.0),
}


def _make_tumor(rng, kind: str, side: str, anatomy: _Anatomy, others: list[_Tumor],
                radius: float | None = None) -> _Tumor | None:
    """Place one tumour of ``kind`` in the lung ``side``, away from the others; its nominal
    ``radius`` (mm) is drawn from the kind's range unless given."""
    depth = anatomy.depth
    sign = -1.0 if side == "right lung" else 1.0
    drawn = float(rng.uniform(*RADIUS_RANGES_MM[kind]))  # drawn either way: the stream stays the same
    radius = drawn if radius is None else float(radius)
    pts, d = depth.points, depth.values.ravel()
    if kind == "attached-mass":
        return _attached_mass(rng, side, anatomy, others, radius)
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


def _attached_mass(rng, side: str, anatomy: _Anatomy, others: list[_Tumor], radius: float) -> _Tumor | None:
    """A mass against any pleural surface (chest wall, mediastinum or diaphragm), its centre
    half a radius inside the pleura (the part beyond it is cut off: the mass indents the
    lung), often with dense lung (atelectasis or consolidation) beside it along the wall."""
    depth = anatomy.depth
    sign = -1.0 if side == "right lung" else 1.0
    pts, d = depth.points, depth.values.ravel()
    free = np.ones(len(pts), bool)
    for t in others:
        free &= np.linalg.norm(pts - t.centre, axis=1) > radius + t.radius * 1.8 + 10.0
    band = np.abs(d - 0.5 * radius) < max(0.5 * DEPTH_LATTICE_MM, 0.1 * radius)
    cand = np.flatnonzero(band & free & (sign * pts[:, 0] > 10.0) & (pts[:, 2] > -110.0) & (pts[:, 2] < 105.0))
    rng.shuffle(cand)
    for n in cand[:300]:
        p = pts[n]
        inward = depth.gradient(p)[0]
        # some lung must remain beyond the mass, or it fills the lung's whole section
        if depth(p + inward * (radius + 4.0))[0] < min(0.5 * radius, 15.0):
            continue
        tumor = _Tumor("attached-mass", side, p, radius)
        tumor.layers.append(([_Lesion(rng, p, radius, 0.08)], HU_TUMOR_SOLID, "over", TUMOR_SOLID_TEXTURE_HU))
        if rng.random() < DENSE_LUNG_SHARE:
            along = _perpendicular(inward, rng.standard_normal(3))  # beside the mass, along the pleura
            size = radius * rng.uniform(0.4, 0.9)
            centre = p + along * (radius + 0.5 * size) * rng.uniform(0.7, 1.0) - inward * 0.3 * size
            tumor.surroundings.append(([_Lesion(rng, centre, size, 0.15)], float(rng.uniform(*HU_DENSE_LUNG)), "over",
                                       DENSE_LUNG_TEXTURE_HU))
        return tumor
    return None


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


