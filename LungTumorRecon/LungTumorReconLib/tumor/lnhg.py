"""``--tumor lnhg``: seed paper 002's two branches and their fusion, in the regions of
:mod:`deep_tumor` (the box around each ``tumor`` seed, or the lungs' bounding box).

1. **Generator** (:class:`networks.lnhg_wgan.NoduleGenerator`): windows of three slices slide
   along the slices (stride 1, overlaps averaged) and give the nodule image; at or above the
   generator's threshold it is the segmentation candidate, and inside the final mask its
   intensity is the intra-nodular heterogeneity image.
2. **Detector** (:func:`networks.nodule_detector.build_nodule_detector`): every slice, with
   its two neighbours as the other channels, gives boxes scoring at least 0.5; the boxes,
   filled, are the detection mask of that slice.
3. **Fusion** (the paper's §III, Fig. 2; its code never fuses), by :func:`fuse`:
   - both branches found something: the generator's 3D connected components that a
     detection overlaps; the others are false positives and go;
   - the detector found nothing: the generator's candidate as it is;
   - the generator found nothing: the detections (filled boxes) are the mask;
   - both empty: empty.
``mode`` runs one branch alone instead (the bench's ablations).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.tumor.deep import model_grid_image, predict_channels

MODES = ("fusion", "generator", "detector")
GENERATOR_MODEL = "lnhg-generator"
DETECTOR_MODEL = "lnhg-detector"


def fuse(generated: np.ndarray, detected: np.ndarray) -> tuple[np.ndarray, str]:
    """The fused mask and which rule made it (see the module doc)."""
    if not detected.any():
        return generated.copy(), "generator only: no detection" if generated.any() else "both empty"
    if not generated.any():
        return detected.copy(), "detector only: the generator found nothing"
    labels, _ = ndi.label(generated)
    kept = np.unique(labels[generated & detected])
    return np.isin(labels, kept[kept > 0]), "fused"


def three_slice_images(image: np.ndarray) -> np.ndarray:
    """(k, h, w) → (k, 3, h, w): each slice between its neighbours (edges repeated)."""
    padded = np.concatenate([image[:1], image, image[-1:]])
    return np.stack([padded[:-2], padded[1:-1], padded[2:]], axis=1)


def detection_mask(detector, image: np.ndarray, device: str = "cpu", batch: int = 8) -> np.ndarray:
    """Filled boxes of every slice's detections on ``image`` ((k, h, w) in 0..1, the detector's grid)."""
    import torch

    mask = np.zeros(image.shape, dtype=bool)
    stack = three_slice_images(image.astype(np.float32))
    with torch.inference_mode():
        for start in range(0, len(stack), batch):
            found = detector([torch.from_numpy(s).to(device) for s in stack[start:start + batch]])
            for k, result in enumerate(found, start=start):
                for x0, y0, x1, y1 in result["boxes"].cpu().numpy():
                    mask[k, int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
    return mask


def generate(generator, region: np.ndarray, spacing_kji, device: str = "cpu") -> np.ndarray:
    """Step 1: the nodule image on the grid of ``region`` (HU)."""
    return predict_channels(generator, region, spacing_kji, device, activation=lambda t: t)[0]


def detect(detector, region: np.ndarray, spacing_kji, device: str = "cpu") -> np.ndarray:
    """Step 2: the filled detection boxes on the grid of ``region`` (HU)."""
    import torch
    import torch.nn.functional as F

    on_grid = detection_mask(detector, model_grid_image(region, spacing_kji, detector.config)[0, 0].numpy(), device)
    return F.interpolate(torch.from_numpy(on_grid.astype(np.float32))[None, None], size=region.shape,
                         mode="nearest")[0, 0].numpy() > 0.5


def region_segmenter(generator, detector, device: str = "cpu", mode: str = "fusion", record: list | None = None,
                     cache: dict | None = None):
    """``segment(hu_region, spacing_kji) -> (mask, nodule image)`` for
    :func:`deep_tumor.segment_tumor_in_regions`; each region's fusion rule is appended to
    ``record``. With ``cache``, each branch's output on a region is kept there (keyed by the
    network and the region's content), so that several modes share one run of each branch."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")

    def cached(network, run, region, spacing_kji):
        if cache is None:
            return run(network, region, spacing_kji, device)
        import hashlib

        key = (id(network), region.shape, hashlib.blake2b(np.ascontiguousarray(region).tobytes(), digest_size=16).digest())
        if key not in cache:
            cache[key] = run(network, region, spacing_kji, device)
        return cache[key]

    def segment(region: np.ndarray, spacing_kji) -> tuple[np.ndarray, np.ndarray]:
        intensity = cached(generator, generate, region, spacing_kji)
        generated = intensity >= generator.config.threshold
        if mode == "generator":
            return generated, intensity
        detected = cached(detector, detect, region, spacing_kji)
        if mode == "detector":
            return detected, intensity
        mask, rule = fuse(generated, detected)
        if record is not None:
            record.append(rule)
        return mask, intensity
    return segment
