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

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.tumor.deep import predict_channels
from LungTumorReconLib.lungs.air import name_by_side

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


def segment_lungs_resunet(hu: np.ndarray, geometry: VolumeGeometry, model=None, device: str = "cpu"
                          ) -> dict[str, np.ndarray]:
    """Return ``{"right lung": mask, "left lung": mask}`` (bool, (k, j, i)); absent lungs are omitted."""
    if model is None:
        from LungTumorReconLib.networks.registry import load_model

        model = load_model(LUNG_MODEL, device)
    spacing_kji = tuple(float(v) for v in geometry.spacing[::-1])
    probability = predict_channels(model, hu, spacing_kji, device)
    return lungs_from_probability(probability, geometry, model.config.threshold)
