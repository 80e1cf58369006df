"""``--tumor MODEL``: a deep segmenter's tumour mask on the CT, shared by every deep model.

1. The region: a box around each ``tumor`` seed (``FIRST_SEED_BOX_MM`` half-sizes, grown to
   ``SEED_BOX_MM`` when the tumour reaches its edge), or else the lungs' bounding box plus a
   margin (the whole CT when there are no lungs).
2. HU clipped to the model's window and scaled to 0..1; resampled in-plane to the model's
   pixel size, and along the slices to its slice spacing when the model has one
   (``config.slice_mm``; older models keep the CT's slices), by :func:`to_model_grid`, which
   training uses too: a 0.6 mm and a 5 mm CT reach the network on the same grid.
3. Windows of the model's slice count (``config.window_slices``) slide along the slices with
   the model's stride (``config.window_stride``; 1 for seed paper 001) over the whole in-plane
   region (MONAI ``sliding_window_inference``); overlapping probabilities average.
4. Probabilities back on the CT's grid; threshold; in-plane dilation by a disk of the
   model's radius in model pixels (seed paper 001's post-processing; radius 0 turns it off).
5. With a seed, the connected component at the seed (or nearest it, within 10 mm), kept to
   within ``LUNG_REACH_MM`` of the lungs when there are lungs (and the seed is that close);
   without a seed, every component that touches the lungs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_index, check_same_shape, check_volume

if TYPE_CHECKING:
    import torch

# Half-sizes (k, j, i) of the region around a seed: first the small box (most tumours are small
# and the networks' sliding windows cost time), then, if the seed's component reaches the box's
# edge, the large one, which holds a 100 mm mass clicked off-centre.
SEED_BOX_MM = (84.0, 84.0, 84.0)
FIRST_SEED_BOX_MM = (36.0, 40.0, 40.0)
LUNG_MARGIN_MM = 10.0
SEED_REACH_MM = 10.0  # a component this close to the seed still counts as the seed's
# With a seed, the mask keeps to voxels this close to the lungs: a mass against the mediastinum or
# the chest wall otherwise runs on into the heart or the muscle, which look the same on CT.
# Chosen on the validation chests (generator seeds 5000-5005): large attached masses 0.19-0.63
# Dice unrestricted, 0.66-0.88 restricted; no tumour lost any.
LUNG_REACH_MM = 5.0


@dataclass
class DeepTumorResult:
    mask: np.ndarray  # (k, j, i) bool
    probability: np.ndarray  # (k, j, i) float32, 0 outside the regions the network saw


def normalise_hu(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.clip((np.asarray(hu, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)


def model_grid_shape(shape_kji, spacing_kji, pixel_mm: float, slice_mm: float | None = None) -> tuple[int, int, int]:
    """The grid's shape at ``pixel_mm`` in-plane and ``slice_mm`` along the slices (None: the CT's slices)."""
    slices = int(shape_kji[0]) if not slice_mm else max(1, int(round(shape_kji[0] * spacing_kji[0] / slice_mm)))
    return (slices, max(1, int(round(shape_kji[1] * spacing_kji[1] / pixel_mm))),
            max(1, int(round(shape_kji[2] * spacing_kji[2] / pixel_mm))))


def to_model_grid(array: np.ndarray, spacing_kji, pixel_mm: float, slice_mm: float | None = None):
    """(k, j, i) array → torch (1, 1, k', j', i') at ``pixel_mm`` in-plane and ``slice_mm``
    along the slices (None: slices unchanged), by linear interpolation."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    size = model_grid_shape(array.shape, spacing_kji, pixel_mm, slice_mm)
    if size == tuple(array.shape):
        return x
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


def model_grid_image(hu: np.ndarray, spacing_kji, config):
    """The network's input image: HU in the model's window as 0..1, on its pixel size and slice
    spacing, as torch (1, 1, k', j', i'). Inference and training both make it here."""
    return to_model_grid(normalise_hu(hu, config.hu_window), spacing_kji, config.pixel_mm, model_slice_mm(config))


def model_grid_label(mask: np.ndarray, spacing_kji, config) -> np.ndarray:
    """A (k, j, i) mask on the model's grid (bool numpy, (k', j', i')), as training compares it."""
    x = to_model_grid(mask.astype(np.float32), spacing_kji, config.pixel_mm, model_slice_mm(config))
    return x[0, 0].numpy() > 0.5


def model_slice_mm(config) -> float | None:
    """The model's slice spacing in mm, or None for a model that takes the CT's slices as they are."""
    return getattr(config, "slice_mm", None)


def predict_probability(model, hu: np.ndarray, spacing_kji, device: str = "cpu", sw_batch_size: int = 2) -> np.ndarray:
    """The model's tumour probability on the (k, j, i) grid of ``hu`` (a region of the CT)."""
    return predict_channels(model, hu, spacing_kji, device, sw_batch_size)[0]


def predict_channels(model, hu: np.ndarray, spacing_kji, device: str = "cpu", sw_batch_size: int = 2,
                     activation=None) -> np.ndarray:
    """Each output channel's probability (``activation``, default sigmoid), (C, k, j, i) on the grid of ``hu``."""
    import torch
    import torch.nn.functional as F
    from monai.inferers import sliding_window_inference

    config = model.config
    x = model_grid_image(hu, spacing_kji, config)
    s, h, w = x.shape[2:]
    multiple = config.in_plane_multiple
    pad_s = max(0, config.window_slices - s)
    pad_h, pad_w = -h % multiple, -w % multiple
    x = F.pad(x, (0, pad_w, 0, pad_h, 0, pad_s))  # 0 = air after normalisation
    roi = (config.window_slices, h + pad_h, w + pad_w)
    activation = activation or torch.sigmoid
    with torch.inference_mode():
        prob = sliding_window_inference(
            x.to(device), roi, sw_batch_size, lambda t: activation(model(t)),
            overlap=(1.0 - config.window_stride / config.window_slices, 0.0, 0.0), mode="constant",
        )
        prob = prob[..., :s, :h, :w].float()
        prob = F.interpolate(prob, size=tuple(hu.shape), mode="trilinear", align_corners=False)
    return prob[0].cpu().numpy()


def post_process(probability: np.ndarray, spacing_kji, threshold: float, radius_px: int, pixel_mm: float) -> np.ndarray:
    """Threshold, then in-plane dilation by a disk of ``radius_px`` model pixels (in mm on the CT's grid)."""
    mask = probability >= threshold
    if radius_px <= 0 or not mask.any():
        return mask
    radius_mm = radius_px * pixel_mm
    rj, ri = (int(np.floor(radius_mm / spacing_kji[n])) for n in (1, 2))
    jj, ii = np.mgrid[-rj:rj + 1, -ri:ri + 1]
    disk = (jj * spacing_kji[1]) ** 2 + (ii * spacing_kji[2]) ** 2 <= radius_mm ** 2 + 1e-6
    return ndi.binary_dilation(mask, structure=disk[None])


def box_around(centre_kji, half_mm, spacing_kji, shape) -> tuple[slice, slice, slice]:
    """The box of half-sizes ``half_mm`` (k, j, i) around a voxel, clipped to ``shape``."""
    return tuple(slice(max(0, int(c - h / s)), min(n, int(c + h / s) + 1))
                 for c, h, s, n in zip(centre_kji, half_mm, spacing_kji, shape))


def _component_at(mask: np.ndarray, kji, spacing_kji) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    if labels[tuple(kji)]:
        return labels == labels[tuple(kji)]
    distance, (k, j, i) = ndi.distance_transform_edt(labels == 0, sampling=spacing_kji, return_indices=True)
    at = tuple(kji)
    if distance[at] > SEED_REACH_MM:
        return np.zeros_like(mask)
    return labels == labels[k[at], j[at], i[at]]


def _near_lungs(local: np.ndarray, lungs: np.ndarray, box: tuple[slice, ...], at, spacing_kji) -> np.ndarray:
    """``local`` (the mask in ``box``) less what lies over ``LUNG_REACH_MM`` from the lungs,
    unless the seed ``at`` itself lies that far out (a mass clicked outside the lungs keeps all)."""
    pad = [int(np.ceil(LUNG_REACH_MM / s)) + 1 for s in spacing_kji]
    outer = tuple(slice(max(0, b.start - p), min(n, b.stop + p)) for b, p, n in zip(box, pad, lungs.shape))
    if not lungs[outer].any():
        return local
    distance = ndi.distance_transform_edt(~lungs[outer], sampling=spacing_kji)
    inner = tuple(slice(b.start - o.start, b.start - o.start + (b.stop - b.start)) for b, o in zip(box, outer))
    near = distance[inner] <= LUNG_REACH_MM
    return local & near if near[at] else local


def _reaches_inner_edge(component: np.ndarray, box: tuple[slice, ...], shape) -> bool:
    """Whether ``component`` touches a face of ``box`` that lies inside the volume (a face on
    the volume's own edge cannot grow)."""
    for axis, (s, n) in enumerate(zip(box, shape)):
        faces = ([0] if s.start > 0 else []) + ([-1] if s.stop < n else [])
        if any(np.take(component, face, axis=axis).any() for face in faces):
            return True
    return False


def segment_tumor_deep(model: torch.nn.Module, hu: np.ndarray, geometry: VolumeGeometry,
                       seeds_kji: list[tuple[int, int, int]], lungs: np.ndarray | None = None,
                       device: str = "cpu") -> DeepTumorResult:
    """The tumour mask by a deep segmenter (steps 1-5 of the module's docstring).

    Parameters
    ----------
    model : torch.nn.Module
        A registry network with its ``config`` (``hu_window``, ``pixel_mm``, ``window_slices``,
        ``window_stride``, ``in_plane_multiple``, ``threshold``, ``dilation_radius``), in eval mode.
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    seeds_kji : list of tuple of int
        Tumour seeds, voxel indices (k, j, i) inside the volume; empty: search the lungs.
    lungs : ndarray, optional
        Both lungs, bool of ``hu``'s shape: the region searched without seeds.
    device : str, optional
        The torch device, ``"cpu"`` by default.

    Returns
    -------
    DeepTumorResult
        The mask (bool) and the probability (float32, 0 where the network did not look), (k, j, i).

    Raises
    ------
    ValueError
        If ``model`` has no ``config``, ``hu`` is not on the geometry's grid, ``lungs`` is not of
        its shape, or a seed lies outside the volume.

    Examples
    --------
    >>> from LungTumorReconLib.networks.recurrent_dense_unet import RecurrentDenseUNet, RecurrentDenseUNetConfig
    >>> model = RecurrentDenseUNet(RecurrentDenseUNetConfig(widths=(2,), lstm_hidden=2, window_slices=2)).eval()
    >>> hu = np.full((4, 16, 16), -850.0)
    >>> g = VolumeGeometry(size=(16, 16, 4), spacing=(1.25, 1.25, 2.5), origin=(0.0, 0.0, 0.0))
    >>> result = segment_tumor_deep(model, hu, g, [(2, 8, 8)])  # untrained: the mask means nothing
    >>> result.mask.shape, result.probability.dtype
    ((4, 16, 16), dtype('float32'))
    """
    if not hasattr(model, "config"):
        raise ValueError("model must be a registry network with a config (its window, pixel size and threshold)")
    check_volume(hu, geometry)
    for kji in seeds_kji:
        check_index(kji, hu.shape, "seed")
    if lungs is not None:
        check_same_shape(lungs, hu.shape, "lungs")
    config = model.config

    def segment(region: np.ndarray, spacing_kji) -> tuple[np.ndarray, np.ndarray]:
        prob = predict_probability(model, region, spacing_kji, device)
        return post_process(prob, spacing_kji, config.threshold, config.dilation_radius, config.pixel_mm), prob
    return segment_tumor_in_regions(segment, hu, geometry, seeds_kji, lungs)


RegionSegmenter = Callable[[np.ndarray, tuple], tuple[np.ndarray, np.ndarray]]


def segment_tumor_in_regions(segment: RegionSegmenter, hu: np.ndarray, geometry: VolumeGeometry,
                             seeds_kji: list[tuple[int, int, int]], lungs: np.ndarray | None = None) -> DeepTumorResult:
    """Steps 1 and 5 of the module doc around ``segment(hu_region, spacing_kji) -> (mask,
    probability)``, which does the rest (a network and its post-processing, or LNHG's two
    branches and their fusion)."""
    spacing_kji = tuple(float(v) for v in geometry.spacing[::-1])
    mask = np.zeros(hu.shape, dtype=bool)
    probability = np.zeros(hu.shape, dtype=np.float32)
    has_lungs = lungs is not None and lungs.any()
    if seeds_kji:
        for kji in seeds_kji:
            for half_mm in (FIRST_SEED_BOX_MM, SEED_BOX_MM):
                box = box_around(kji, half_mm, spacing_kji, hu.shape)
                local, prob = segment(hu[box], spacing_kji)
                at = tuple(int(c - b.start) for c, b in zip(kji, box))
                if has_lungs:
                    local = _near_lungs(local, lungs, box, at, spacing_kji)
                component = _component_at(local, at, spacing_kji)
                if not _reaches_inner_edge(component, box, hu.shape):
                    break
            np.maximum(probability[box], prob, out=probability[box])
            mask[box] |= component
        return DeepTumorResult(mask, probability)
    if has_lungs:
        points = np.argwhere(lungs)
        lo, hi = points.min(axis=0), points.max(axis=0)
        margin = [int(np.ceil(LUNG_MARGIN_MM / s)) for s in spacing_kji]
        box = tuple(slice(max(0, a - m), min(n, b + m + 1)) for a, b, m, n in zip(lo, hi, margin, hu.shape))
    else:
        box = tuple(slice(0, n) for n in hu.shape)
    local, prob = segment(hu[box], spacing_kji)
    probability[box] = prob
    if has_lungs:
        labels, n = ndi.label(local)
        touching = np.unique(labels[local & lungs[box]])
        local = np.isin(labels, touching[touching > 0])
    mask[box] = local
    return DeepTumorResult(mask, probability)
