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

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from LungTumorReconLib.coordinates import check_index, check_same_shape, check_spacing
from LungTumorReconLib.tumor.labels import nearest_label


def hessian_eigen_at(
    hu: np.ndarray, point: tuple[int, int, int], radius_mm: float, spacing_kji: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The scale-normalised Hessian's eigenvalues and eigenvectors at one point of the CT.

    The Hessian of the CT smoothed by a Gaussian of sigma = radius / sqrt(3) mm, at one point:
    the CT weighted by the Gaussian's second derivatives, (x_a x_b / sigma⁴ - δ_ab / sigma²) G,
    over ±3 sigma (edges repeated), times sigma² (scale normalisation).

    Parameters
    ----------
    hu : ndarray
        The CT (or a region of it) in Hounsfield units, (k, j, i).
    point : tuple of int
        The voxel (k, j, i) inside ``hu`` where the Hessian is taken.
    radius_mm : float
        The radius of the structure judged there (sets sigma), > 0.
    spacing_kji : sequence of float
        The voxel spacing (k, j, i) in mm, positive.

    Returns
    -------
    eigenvalues : ndarray
        (3,) in HU, largest magnitude first.
    eigenvectors : ndarray
        (3, 3), the matching unit eigenvectors in its columns, (k, j, i) in mm.

    Raises
    ------
    ValueError
        If ``hu`` is not 3D, ``point`` lies outside it, or the radius or spacing is not positive.

    Examples
    --------
    >>> kk, jj, ii = np.indices((21, 21, 21))
    >>> ball = np.where((kk - 10) ** 2 + (jj - 10) ** 2 + (ii - 10) ** 2 <= 16, 40.0, -850.0)
    >>> values, vectors = hessian_eigen_at(ball, (10, 10, 10), 4.0, (1.0, 1.0, 1.0))
    >>> bool((values < 0).all()), vectors.shape  # a bright blob curves down along every axis
    (True, (3, 3))
    """
    if np.ndim(hu) != 3:
        raise ValueError(f"hu must be a 3D (k, j, i) array, got {np.ndim(hu)} dimension(s)")
    check_index(point, hu.shape, "point")
    check_spacing(spacing_kji, 3, "spacing_kji")
    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be positive, got {radius_mm}")
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


def _check_lobe_arguments(component: np.ndarray, hu: np.ndarray, seed, spacing_kji, h_mm: float,
                          extent_factor: float) -> None:
    if np.ndim(component) != 3:
        raise ValueError(f"component must be a 3D (k, j, i) mask, got {np.ndim(component)} dimension(s)")
    check_same_shape(hu, component.shape, "hu")
    check_index(seed, component.shape, "seed")
    check_spacing(spacing_kji, 3, "spacing_kji")
    if not h_mm > 0 or not extent_factor > 0:
        raise ValueError(f"h_mm and extent_factor must be positive, got {h_mm} and {extent_factor}")


def tubular_lobes(
    component: np.ndarray, hu: np.ndarray, seed: tuple[int, int, int], spacing_kji: Sequence[float],
    h_mm: float = 1.0, extent_factor: float = 1.5,
) -> np.ndarray:
    """The voxels of ``component`` in lobes that are vessel segments (the module's docstring).

    A lobe counts when it is not the one holding ``seed``, is no thicker than it, is tubular at
    its centre (line > dot) and runs on, along the tube's axis, at least ``extent_factor``
    times its radius on both sides of its centre.

    Parameters
    ----------
    component : ndarray
        The grown tumour component, bool (k, j, i).
    hu : ndarray
        The CT in Hounsfield units on the same grid as ``component``.
    seed : tuple of int
        The seed voxel (k, j, i) inside the grid; its lobe (or the nearest) is the tumour's.
    spacing_kji : sequence of float
        The voxel spacing (k, j, i) in mm, positive.
    h_mm : float, optional
        How much deeper than its saddle a lobe's centre must be to count, > 0.
    extent_factor : float, optional
        How far, in lobe radii, a vessel runs on along its axis both ways, > 0.

    Returns
    -------
    ndarray
        Bool (k, j, i): the voxels of the tubular lobes (none when the component has one lobe).

    Raises
    ------
    ValueError
        If ``component`` is not 3D, ``hu`` not of its shape, the seed outside the grid, the
        spacing not positive, or ``h_mm`` or ``extent_factor`` not positive.

    Examples
    --------
    >>> kk, jj, ii = np.indices((40, 30, 30))
    >>> nodule = (kk - 20) ** 2 + (jj - 15) ** 2 + (ii - 10) ** 2 <= 36  # radius 6 voxels
    >>> vessel = (jj - 15) ** 2 + (ii - 19) ** 2 <= 9  # radius 3, along k, touching the nodule
    >>> component = nodule | vessel
    >>> found = tubular_lobes(component, np.where(component, 40.0, -850.0), (20, 15, 10), (1.0, 1.0, 1.0))
    >>> bool(found[5, 15, 19]), bool(found[20, 15, 10])  # the vessel away from the nodule; the nodule
    (True, False)
    """
    _check_lobe_arguments(component, hu, seed, spacing_kji, h_mm, extent_factor)
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
