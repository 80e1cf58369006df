"""Overlap and surface-distance metrics between a predicted and a reference mask (MONAI)."""

from __future__ import annotations

import math
import warnings

import numpy as np


def compare_masks(pred: np.ndarray, ref: np.ndarray, spacing_kji: tuple[float, float, float]) -> dict:
    """Dice, IoU, Hausdorff (max and 95th percentile) and mean surface distance in mm.

    Distances are symmetric and computed by MONAI on the mask borders with the voxel
    spacing; they are null when either mask is empty.
    """
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_iou,
    )

    def onehot(mask: np.ndarray) -> torch.Tensor:
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        return torch.cat([1 - m, m], dim=1)

    pred, ref = _crop_to_union(pred.astype(bool), ref.astype(bool))
    p, r = onehot(pred), onehot(ref)
    both_empty = not pred.any() and not ref.any()
    out = {
        "dice": 1.0 if both_empty else float(compute_dice(p, r, include_background=False, ignore_empty=False)),
        "iou": 1.0 if both_empty else float(compute_iou(p, r, include_background=False, ignore_empty=False)),
        "hd_mm": None,
        "hd95_mm": None,
        "msd_mm": None,
        "pred_voxels": int(pred.sum()),
        "ref_voxels": int(ref.sum()),
    }
    if pred.any() and ref.any():
        spacing = list(spacing_kji)
        warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
        out["hd_mm"] = float(compute_hausdorff_distance(p, r, spacing=spacing))
        out["hd95_mm"] = float(compute_hausdorff_distance(p, r, percentile=95, spacing=spacing))
        out["msd_mm"] = float(compute_average_surface_distance(p, r, symmetric=True, spacing=spacing))
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def _crop_to_union(pred: np.ndarray, ref: np.ndarray, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to their union's bounding box (plus a margin): same metrics, far less work."""
    union = pred | ref
    if not union.any():
        return pred, ref
    nz = np.argwhere(union)
    lo = np.maximum(nz.min(axis=0) - margin, 0)
    hi = nz.max(axis=0) + margin + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return pred[box], ref[box]


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Plain Dice for benchmarks (no torch import)."""
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & ref).sum()) / total


def dice_2d(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """Seed paper 004's Dice2D: the mean of the per-slice Dice over the axial slices whose
    reference holds tumour (its true-positive and false-negative slices); None without any."""
    pred, ref = pred.astype(bool), ref.astype(bool)
    slices = np.flatnonzero(ref.any(axis=(1, 2)))
    if len(slices) == 0:
        return None
    inter = (pred[slices] & ref[slices]).sum(axis=(1, 2))
    total = pred[slices].sum(axis=(1, 2)) + ref[slices].sum(axis=(1, 2))
    return float(np.mean(2.0 * inter / total))


def confusion_scores(pred: np.ndarray, ref: np.ndarray, region: tuple[slice, ...] | None = None) -> dict:
    """Seed paper 003's scores from the confusion matrix (MONAI): pixel accuracy
    (TP + TN) / N, IoU TP / (TP + FP + FN) and true-positive rate TP / (TP + FN).

    Accuracy counts true negatives, so it depends on the region it is taken over: ``region``
    (e.g. the box a network saw around its seed); the whole arrays without one.
    """
    import torch
    from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix

    if region is not None:
        pred, ref = pred[region], ref[region]
    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32)).reshape(1, 1, -1)
    r = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)).reshape(1, 1, -1)
    matrix = get_confusion_matrix(p, r, include_background=True)
    tp, fp, tn, fn = (float(v) for v in matrix[0, 0])
    return {"pixel_accuracy": float(compute_confusion_matrix_metric("accuracy", matrix)),
            "iou": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
            "true_positive_rate": float(compute_confusion_matrix_metric("sensitivity", matrix)) if tp + fn else None}


def detection_counts(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Per case: false-positive components (3D connected components of ``pred`` that touch no
    reference voxel) and false-negative tumours (components of ``ref`` that no predicted voxel
    touches)."""
    from scipy import ndimage as ndi

    pred, ref = pred.astype(bool), ref.astype(bool)
    pred_labels, n_pred = ndi.label(pred)
    ref_labels, n_ref = ndi.label(ref)
    hit_pred = np.unique(pred_labels[pred & ref])
    hit_ref = np.unique(ref_labels[pred & ref])
    return {"false_positive_components": int(n_pred - np.count_nonzero(hit_pred)),
            "false_negative_tumours": int(n_ref - np.count_nonzero(hit_ref)),
            "components": int(n_pred), "tumours": int(n_ref)}
