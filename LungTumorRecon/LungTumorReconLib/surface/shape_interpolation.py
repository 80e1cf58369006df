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

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.surface.marching_cubes import check_mask, crop_to_mask, iso_surface

if TYPE_CHECKING:
    from vtkmodules.vtkCommonDataModel import vtkPolyData


def signed_distance_mm(mask: np.ndarray, spacing_kji) -> np.ndarray:
    """φ in mm, negative inside, from Euclidean distance maps on the anisotropic grid."""
    inside = ndi.distance_transform_edt(mask, sampling=spacing_kji)
    outside = ndi.distance_transform_edt(~mask, sampling=spacing_kji)
    return (outside - inside).astype(np.float32)


def interpolate_slices(
    mask: np.ndarray, geometry: VolumeGeometry, slice_mm: float | None = None, order: int = 3, pad: int = 4
) -> tuple[np.ndarray, VolumeGeometry]:
    """The signed distance map of the mask's bounding box (plus ``pad`` voxels, room for φ to
    turn positive), resampled along k to slices ``slice_mm`` apart (default: the in-plane
    spacing). Returns φ (k, j, i) in mm and the geometry of its grid."""
    if not mask.any():
        raise ValueError("empty mask: no surface to build")
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    crop, lo = crop_to_mask(mask.astype(bool), pad)
    phi = signed_distance_mm(crop, spacing_kji)
    step = float(slice_mm or min(spacing_kji[1:]))
    factor = spacing_kji[0] / step
    n_out = int(round((crop.shape[0] - 1) * factor)) + 1
    positions = np.arange(n_out) / factor  # in thick-slice index units, first and last kept
    coords = np.meshgrid(positions, np.arange(crop.shape[1]), np.arange(crop.shape[2]), indexing="ij")
    fine = ndi.map_coordinates(phi, coords, order=order, mode="nearest").astype(np.float32)
    # the fine grid: same in-plane axes; slices every `step` mm from the crop's first slice
    origin = geometry.ijk_to_lps(np.asarray(lo[::-1], dtype=float))
    fine_geometry = VolumeGeometry(
        size=(crop.shape[2], crop.shape[1], n_out),
        spacing=(geometry.spacing[0], geometry.spacing[1], spacing_kji[0] / factor),
        origin=tuple(float(v) for v in origin),
        direction=geometry.direction,
    )
    return fine, fine_geometry


def interpolation_marching_cubes_surface(mask: np.ndarray, geometry: VolumeGeometry, order: int = 3
                                         ) -> vtkPolyData:
    """``--recon interp-mc``: the zero level of the slice-interpolated signed distance map.

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    geometry : VolumeGeometry
        The mask's grid; its shape (k, j, i) is ``mask.shape``.
    order : int, optional
        The spline order of the interpolation along k: 3 (cubic B-spline) or 1 (linear);
        scipy's orders 0-5 are accepted.

    Returns
    -------
    vtkPolyData
        The closed surface in LPS mm, on slices as thin as the in-plane spacing.

    Raises
    ------
    ValueError
        If ``mask`` is not 3D, its shape is not the geometry's, the spacing is not positive,
        the mask is empty, or ``order`` is not an integer 0-5.

    Examples
    --------
    >>> from LungTumorReconLib.surface.marching_cubes import surface_volume_ml
    >>> g = VolumeGeometry((12, 12, 6), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> mask = ((k - 2.5) * 3) ** 2 + (j - 5.5) ** 2 + (i - 5.5) ** 2 <= 16  # a 4 mm ball on 3 mm slices
    >>> round(surface_volume_ml(interpolation_marching_cubes_surface(mask, g)), 3)
    0.224
    """
    check_mask(mask, geometry)
    if not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ValueError(f"order must be a spline order 0-5 (3: cubic, 1: linear), got {order!r}")
    phi, fine_geometry = interpolate_slices(mask, geometry, order=order)
    return iso_surface(phi, fine_geometry, 0.0)
