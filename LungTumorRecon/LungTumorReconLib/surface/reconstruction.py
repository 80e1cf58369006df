"""The tumour's 3D surface from its segmentation, by each ``--recon`` method.

Every method takes the (k, j, i) mask, its geometry and the CT (HU, same grid; the learned
method uses its partial-volume intensities) and returns a closed vtkPolyData in LPS mm.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.surface.shape_interpolation import interpolation_marching_cubes_surface
from LungTumorReconLib.surface.marching_cubes import (
    FAIRING_ITERATIONS,
    FAIRING_PASS_BAND,
    marching_cubes_fairing_surface,
    marching_cubes_surface,
)

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
    "interp-mc": {"interpolation": "signed distance, cubic B-spline along k", "slice_mm": "in-plane spacing",
                  "level": 0.0},
    "gan": {"model": "slice-lstm-gan", "grid": "64^3-128^3 over the tumour's box", "level": "logit 0"},
}


def reconstruct_surface(
    method: str, mask: np.ndarray, geometry: VolumeGeometry, ct: np.ndarray | None = None, device: str = "cpu",
    weights=None,
):
    """The tumour surface by ``method`` (one of :data:`RECONSTRUCTIONS`); ``device`` and
    ``weights`` (a safetensors file instead of the shipped one) are for the GAN."""
    if method == "gan":
        return _gan(mask, geometry, ct, device, weights)
    return RECONSTRUCTIONS[method](mask, geometry, ct)
