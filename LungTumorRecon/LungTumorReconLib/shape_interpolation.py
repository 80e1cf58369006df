"""``--recon interp-mc``: shape-based interpolation between slices, then marching cubes.

Shape-based interpolation (Raya & Udupa 1990; Herman, Zheng & Bucholtz 1992): the mask
becomes a signed distance map in mm (negative inside),

    φ(x) = d(x, outside) − d(x, inside)    (distances between voxel centres, so φ = 0 lies
                                            halfway between the last voxel in and the first out),

which is interpolated along the slice axis (k) onto slices as thin as the in-plane spacing;
the surface is the zero level of the interpolated map, by marching cubes. Between two
slices the outline moves smoothly from one contour to the next instead of stepping; beyond
the first and last slices the tumour ends half a slice out, where φ crosses zero.

Interpolation is by cubic B-spline (``order=3``) or linear (``order=1``) with scipy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .coordinates import VolumeGeometry


def signed_distance_mm(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """φ in mm, negative inside, from Euclidean distance maps on the anisotropic grid."""
    inside = ndi.distance_transform_edt(mask, sampling=spacing_kji)
    outside = ndi.distance_transform_edt(~mask, sampling=spacing_kji)
    return (outside - inside).astype(np.float32)


def interpolate_slices(
    mask: np.ndarray, geometry: VolumeGeometry, slice_mm: float | None = None, order: int = 3, pad: int = 2
) -> tuple[np.ndarray, VolumeGeometry, np.ndarray]:
    """The signed distance map of the mask's bounding box (plus ``pad``), resampled along k
    to slices ``slice_mm`` apart (default: the in-plane spacing). Returns φ (k, j, i) in mm,
    the geometry of its grid, and the box's first voxel in the input's (k, j, i)."""
    if not mask.any():
        raise ValueError("empty mask: no surface to build")
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(axis=0) - pad, 0)
    hi = np.minimum(nz.max(axis=0) + pad + 1, mask.shape)
    crop = np.zeros(tuple(hi - lo + 2 * pad), dtype=bool)  # room for φ to turn positive
    crop[pad:-pad, pad:-pad, pad:-pad] = mask[tuple(slice(a, b) for a, b in zip(lo, hi))]
    lo = lo - pad
    phi = signed_distance_mm(crop, spacing_kji)
    step = float(slice_mm or min(spacing_kji[1:]))
    factor = spacing_kji[0] / step
    n_out = int(round((crop.shape[0] - 1) * factor)) + 1
    positions = np.arange(n_out) / factor  # in thick-slice index units, first and last kept
    coords = np.meshgrid(positions, np.arange(crop.shape[1]), np.arange(crop.shape[2]), indexing="ij")
    fine = ndi.map_coordinates(phi, coords, order=order, mode="nearest").astype(np.float32)
    # the fine grid: same in-plane axes; slices every `step` mm from the crop's first slice
    origin = geometry.ijk_to_lps(np.asarray(lo[::-1], dtype=float))
    direction = geometry.direction
    fine_geometry = VolumeGeometry(
        size=(crop.shape[2], crop.shape[1], n_out),
        spacing=(geometry.spacing[0], geometry.spacing[1], spacing_kji[0] / factor),
        origin=tuple(float(v) for v in origin),
        direction=direction,
    )
    return fine, fine_geometry, lo


def interpolation_marching_cubes_surface(mask: np.ndarray, geometry: VolumeGeometry, order: int = 3):
    """``--recon interp-mc``: the zero level of the slice-interpolated signed distance map."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    from .surface_marching_cubes import iso_surface

    phi, fine_geometry, _ = interpolate_slices(mask, geometry, order=order)
    image = vtkImageData()
    image.SetDimensions(phi.shape[2], phi.shape[1], phi.shape[0])
    image.GetPointData().SetScalars(numpy_to_vtk(phi.ravel(order="C"), deep=True))
    return iso_surface(image, np.zeros(3), fine_geometry, 0.0)
