"""Vessels as thick as the tumour they touch: lobes whose centre is a tube, not a blob.

A grown tumour component is split into lobes by a watershed of its distance map (one lobe
per h-maximum of the distance to its border, scikit-image). Each lobe is judged at its own
centre (the deepest voxel) and its own scale: the Hessian of the CT, smoothed with a Gaussian
of sigma = R / sqrt(3) for a lobe of inscribed radius R, scale-normalised by sigma².
With its eigenvalues ordered by magnitude, |l1| >= |l2| >= |l3|, the selective enhancement
filters of Li, Sone and Doi (Med. Phys. 30(8), 2003) give

    dot  = |l3|² / |l1|            where l1, l2, l3 < 0  (a bright blob: a nodule)
    line = |l2| (|l2| - |l3|) / |l1|  where l1, l2 < 0   (a bright tube: a vessel)

A lobe other than the seed's, no thicker than it, whose line exceeds its dot, and which runs
on along the tube's axis (the eigenvector of l3) for at least 1.5 times its radius on both
sides of its centre, is a vessel segment; a lobe of a lobulated tumour, fused to the rest along
that axis, ends on its far side within about one radius, and a lobe thicker than the seed's is
the tumour's body. Judging each lobe once, at its centre and scale, matters: voxel-wise
vesselness (Frangi, Sato, Li) answers "line" on most of a tumour too, from its lobulations, its
texture and a vessel beside it. Thin lobes (inscribed radius under 1.5 voxels) are left to the
opening that follows.

Written here because scikit-image and ITK give voxel-wise Hessians and vesselness over a
whole image, not a per-lobe blob-or-tube decision from the Hessian at one point (computed
below from the Gaussian's derivatives, a few thousand voxels per lobe).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from LungTumorReconLib.tumor.labels import nearest_label


def hessian_eigen_at(
    hu: np.ndarray, point: tuple[int, int, int], radius_mm: float, spacing_kji
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (HU), largest magnitude first, and eigenvectors (columns, (k, j, i) in mm)
    of the scale-normalised Hessian at ``point`` for a structure of radius ``radius_mm``.

    The Hessian of the CT smoothed by a Gaussian of sigma = radius / sqrt(3) mm, at one point:
    the CT weighted by the Gaussian's second derivatives, (x_a x_b / sigma⁴ - δ_ab / sigma²) G,
    over ±3 sigma (edges repeated), times sigma² (scale normalisation).
    """
    sigma = radius_mm / np.sqrt(3.0)
    spacing = np.asarray(spacing_kji, dtype=float)
    half = [int(np.ceil(3 * sigma / s)) for s in spacing]
    index = np.ix_(*[np.clip(np.arange(c - h, c + h + 1), 0, n - 1) for c, h, n in zip(point, half, hu.shape)])
    patch = np.clip(hu[index].astype(np.float64), -1000.0, 400.0)
    offsets = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing)]  # mm
    grid = np.meshgrid(*offsets, indexing="ij")
    weight = np.exp(-sum(g * g for g in grid) / (2 * sigma * sigma))
    weight /= weight.sum()
    hessian = np.empty((3, 3))
    for a in range(3):
        for b in range(a, 3):
            kernel = grid[a] * grid[b] / sigma**4 - (1.0 / sigma**2 if a == b else 0.0)
            hessian[a, b] = hessian[b, a] = float((patch * weight * kernel).sum()) * sigma**2
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    order = np.argsort(-np.abs(eigenvalues))
    return eigenvalues[order], eigenvectors[:, order]


def extent_along(mask: np.ndarray, point, axis_mm: np.ndarray, spacing_kji, reach_mm: float,
                 width_mm: float) -> tuple[float, float]:
    """How far (mm, up to ``reach_mm``) ``mask`` runs from ``point`` along ``axis_mm`` and
    against it: the farthest voxel of ``mask`` within ``width_mm`` of the axis (a cylinder, so
    that a hole or a slightly tilted axis does not stop it). An axis that leaves the array
    within ``reach_mm`` counts as running on (the structure goes on beyond the neighbourhood)."""
    spacing = np.asarray(spacing_kji, dtype=float)
    unit = axis_mm / np.linalg.norm(axis_mm)
    half = np.ceil(reach_mm / spacing).astype(int)
    box = tuple(slice(max(0, c - h), c + h + 1) for c, h in zip(point, half))
    offsets = (np.argwhere(mask[box]) + [b.start for b in box] - np.asarray(point)) * spacing
    along = offsets @ unit
    near_axis = np.linalg.norm(offsets - along[:, None] * unit, axis=1) <= width_mm
    extents = []
    for sign in (1.0, -1.0):
        end = np.asarray(point) + sign * unit * reach_mm / spacing
        if (end < -0.5).any() or (end > np.asarray(mask.shape) - 0.5).any():
            extents.append(reach_mm)
            continue
        ahead = sign * along[near_axis]
        extents.append(float(min(ahead.max(initial=0.0), reach_mm)))
    return extents[0], extents[1]


def dot_and_line(eigenvalues: np.ndarray) -> tuple[float, float]:
    """Li et al.'s (2003) blob ("dot") and tube ("line") measures of bright structures, from
    eigenvalues ordered by magnitude (largest first)."""
    l1, l2, l3 = (float(v) for v in eigenvalues)
    a1, a2, a3 = abs(l1), abs(l2), abs(l3)
    if a1 == 0.0:
        return 0.0, 0.0
    dot = a3 * a3 / a1 if l1 < 0 and l2 < 0 and l3 < 0 else 0.0
    line = a2 * (a2 - a3) / a1 if l1 < 0 and l2 < 0 else 0.0
    return dot, line


def tubular_lobes(
    component: np.ndarray, hu: np.ndarray, seed: tuple[int, int, int], spacing_kji, h_mm: float = 1.0,
    extent_factor: float = 1.5,
) -> np.ndarray:
    """The voxels of ``component`` in lobes (other than the one holding ``seed``, and no
    thicker than it) whose centre is tubular (line > dot) and which run on, along the tube's axis, at least
    ``extent_factor`` times their radius on both sides of it; ``component`` and ``hu`` share
    one grid, ``h_mm`` is how much deeper than its saddle a lobe's centre must be to count."""
    spacing = np.asarray(spacing_kji, dtype=float)
    depth = ndi.distance_transform_edt(component, sampling=spacing)
    markers, n = ndi.label(h_maxima(depth, h_mm) & component)
    tubular = np.zeros(component.shape, dtype=bool)
    if n < 2:
        return tubular
    lobes = watershed(-depth, markers, mask=component)
    own = nearest_label(lobes, seed, spacing)  # a seed just outside the component: its nearest lobe
    centres = ndi.maximum_position(depth, lobes, index=np.arange(1, n + 1))
    own_radius = depth[centres[own - 1]]
    for lobe, centre in enumerate(centres, start=1):
        radius = depth[centre]
        if lobe == own or radius < 1.5 * spacing.max() or radius > own_radius:
            continue
        eigenvalues, eigenvectors = hessian_eigen_at(hu, centre, radius, spacing)
        dot, line = dot_and_line(eigenvalues)
        if line <= dot:
            continue
        reach = extent_factor * radius
        if min(extent_along(component, centre, eigenvectors[:, 2], spacing, reach, 0.5 * radius)) >= reach:
            tubular |= lobes == lobe
    return tubular
