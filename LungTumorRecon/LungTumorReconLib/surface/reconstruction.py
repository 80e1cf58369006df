"""The tumour's 3D surface from its segmentation, by each ``--recon`` method.

Every method takes the (k, j, i) mask, its geometry and the CT (HU, same grid; the learned
method uses its partial-volume intensities) and returns a closed vtkPolyData in LPS mm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape
from LungTumorReconLib.surface.marching_cubes import (
    FAIRING_ITERATIONS,
    FAIRING_PASS_BAND,
    check_mask,
    marching_cubes_fairing_surface,
    marching_cubes_surface,
)
from LungTumorReconLib.surface.shape_interpolation import interpolation_marching_cubes_surface

if TYPE_CHECKING:
    from vtkmodules.vtkCommonDataModel import vtkPolyData

Reconstruction = Callable[[np.ndarray, VolumeGeometry, "np.ndarray | None"], object]

RECONSTRUCTIONS: dict[str, Reconstruction] = {
    "mc": lambda mask, geometry, ct=None: marching_cubes_surface(mask, geometry),
    "mc-fairing": lambda mask, geometry, ct=None: marching_cubes_fairing_surface(mask, geometry),
    "interp-mc": lambda mask, geometry, ct=None: interpolation_marching_cubes_surface(mask, geometry),
    "gan": lambda mask, geometry, ct=None: _gan(mask, geometry, ct),
}


def _gan(mask, geometry, ct, device: str = "cpu", weights=None):
    from LungTumorReconLib.networks.registry import load_model
    from LungTumorReconLib.surface.gan import gan_surface

    return gan_surface(mask, geometry, ct, model=load_model("slice-lstm-gan", device, weights), device=device)

# what report.json records of each method
RECON_PARAMETERS: dict[str, dict] = {
    "mc": {"level": 0.5},
    "mc-fairing": {"level": 0.5, "fairing": "windowed sinc", "iterations": FAIRING_ITERATIONS,
                   "pass_band": FAIRING_PASS_BAND},
    "interp-mc": {"interpolation": "signed distance, cubic B-spline in k, j and i",
                  "grid": "64^3-256^3 over the tumour's box, voxels as fine as the in-plane spacing", "level": 0.0},
    "gan": {"model": "slice-lstm-gan", "grid": "64^3-128^3 over the tumour's box", "level": "logit 0"},
}


def reconstruct_surface(
    method: str, mask: np.ndarray, geometry: VolumeGeometry, ct: np.ndarray | None = None, device: str = "cpu",
    weights: str | Path | None = None,
) -> vtkPolyData:
    """The tumour's closed surface by one ``--recon`` method.

    Parameters
    ----------
    method : str
        One of :data:`RECONSTRUCTIONS`: ``"mc"``, ``"mc-fairing"``, ``"interp-mc"`` or ``"gan"``.
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    geometry : VolumeGeometry
        The mask's grid; its shape (k, j, i) is ``mask.shape``.
    ct : ndarray, optional
        The CT in HU on the same grid (the GAN's partial-volume intensities).
    device : str, optional
        The GAN's torch device, ``"cpu"`` by default.
    weights : str or Path, optional
        The GAN's weights, a safetensors file instead of the shipped one.

    Returns
    -------
    vtkPolyData
        The closed surface in LPS mm.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``mask`` is not a non-empty mask on the geometry's grid, or
        ``ct`` is not of its shape.

    Examples
    --------
    >>> from LungTumorReconLib.surface.marching_cubes import surface_volume_ml
    >>> g = VolumeGeometry((12, 12, 6), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> mask = ((k - 2.5) * 3) ** 2 + (j - 5.5) ** 2 + (i - 5.5) ** 2 <= 16  # a 4 mm ball on 3 mm slices
    >>> [round(surface_volume_ml(reconstruct_surface(m, mask, g)), 3) for m in ("mc", "interp-mc")]
    [0.245, 0.232]
    """
    if method not in RECONSTRUCTIONS:
        raise ValueError(f"unknown reconstruction method {method!r}; one of {', '.join(RECONSTRUCTIONS)}")
    check_mask(mask, geometry)
    if ct is not None:
        check_same_shape(ct, mask.shape, "ct")
    if method == "gan":
        return _gan(mask, geometry, ct, device, weights)
    return RECONSTRUCTIONS[method](mask, geometry, ct)
