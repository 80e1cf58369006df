"""``--lungs resunet``: the organ stage of seed paper 003's two-stage ResUNet, on the lungs.

1. The ResUNet (:mod:`networks.resunet`, two output channels: the lung on the image's
   low-i side and the other) predicts every slice of the CT at its pixel size
   (:func:`deep_tumor.predict_channels`, one-slice windows).
2. A voxel belongs to the channel with the higher probability, if that is at least the
   model's threshold; each channel keeps its largest 3D component, with its holes filled per
   axial slice (vessels and enclosed tumours count as lung, as in the training truth).
3. The two masks are named right and left by their LPS x (patient right is −x), so a
   mirrored volume still gets the right names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_volume
from LungTumorReconLib.lungs.air import name_by_side
from LungTumorReconLib.tumor.deep import predict_channels

if TYPE_CHECKING:
    import torch

LUNG_MODEL = "resunet-lungs"  # the registry entry of the organ stage


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _fill_per_slice(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        out[k] = ndi.binary_fill_holes(mask[k])
    return out


def lungs_from_probability(probability: np.ndarray, geometry: VolumeGeometry, threshold: float
                           ) -> dict[str, np.ndarray]:
    """Step 2 and 3 of the module doc on (2, k, j, i) channel probabilities."""
    lungs = []
    for c in (0, 1):
        mask = (probability[c] >= threshold) & (probability[c] >= probability[1 - c])
        mask = _fill_per_slice(_largest_component(mask))
        if mask.any():
            lungs.append(mask)
    if len(lungs) == 2:
        lungs[1] &= ~lungs[0]  # hole filling may reach into the other lung at the junction line
    return name_by_side(lungs, geometry) if lungs else {}


def segment_lungs_resunet(hu: np.ndarray, geometry: VolumeGeometry, model: torch.nn.Module | None = None,
                          device: str = "cpu") -> dict[str, np.ndarray]:
    """The lungs by the ResUNet organ stage (steps 1-3 of the module's docstring).

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    model : torch.nn.Module, optional
        A two-channel :class:`networks.resunet.ResUNet` with its ``config``; the registry's
        ``resunet-lungs`` (shipped weights) by default.
    device : str, optional
        The torch device to run on, ``"cpu"`` by default.

    Returns
    -------
    dict of str to ndarray
        ``{"right lung": mask, "left lung": mask}`` (bool, (k, j, i)); absent lungs are omitted.

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, or ``model`` does not have two output channels.

    Examples
    --------
    >>> import torch
    >>> from LungTumorReconLib.networks.resunet import ResUNet, ResUNetConfig
    >>> _ = torch.manual_seed(0)
    >>> model = ResUNet(ResUNetConfig(out_channels=2, widths=(4, 4, 8, 8), pixel_mm=5.0)).eval()
    >>> hu = np.full((4, 32, 32), -850.0)
    >>> g = VolumeGeometry(size=(32, 32, 4), spacing=(5.0, 5.0, 5.0), origin=(-80.0, -80.0, 0.0))
    >>> lungs = segment_lungs_resunet(hu, g, model)  # untrained weights: the masks mean nothing
    >>> set(lungs) <= {"right lung", "left lung"}
    True
    """
    check_volume(hu, geometry)
    if model is not None and getattr(model.config, "out_channels", 2) != 2:
        raise ValueError(f"the lung model needs two output channels, got {model.config.out_channels}")
    if model is None:
        from LungTumorReconLib.networks.registry import load_model

        model = load_model(LUNG_MODEL, device)
    spacing_kji = tuple(float(v) for v in geometry.spacing[::-1])
    probability = predict_channels(model, hu, spacing_kji, device)
    return lungs_from_probability(probability, geometry, model.config.threshold)
