"""Small helpers on label images shared by the tumour steps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def nearest_label(labels: np.ndarray, point: tuple[int, int, int], spacing, reach_mm: float = np.inf) -> int:
    """The label at ``point``, else the nearest non-zero label within ``reach_mm`` (0: none).

    Parameters
    ----------
    labels : ndarray of int, shape (k, j, i)
        0 is background.
    point : tuple of int
        A voxel index (k, j, i).
    spacing : sequence of float
        Voxel size along (k, j, i) in mm.
    reach_mm : float
        How far from ``point`` a label may be.

    Returns
    -------
    int
        The label, or 0.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 5), dtype=int); labels[0, 0, 4] = 7
    >>> nearest_label(labels, (0, 0, 1), (1.0, 1.0, 1.0)), nearest_label(labels, (0, 0, 1), (1, 1, 1), 2.0)
    (7, 0)
    """
    if labels.ndim != len(point):
        raise ValueError(f"point {point} has {len(point)} indices for a {labels.ndim}-D label image")
    label = labels[point]
    if label:
        return int(label)
    distance, indices = ndi.distance_transform_edt(labels == 0, sampling=spacing, return_indices=True)
    if distance[point] > reach_mm:
        return 0
    return int(labels[tuple(ix[point] for ix in indices)])
