"""Threshold baseline for the lungs: the simple method the snake (issue 3) is measured against.

Steps, all in millimetres so that they hold at any voxel size:

1. air = HU < ``air_hu``; air that reaches the in-plane border of the volume is outside the body;
2. the trachea is tracked down from the top as a small, central air column and removed,
   down to the carina where it splits;
3. the largest air components are the lungs; a single component (lungs touching at the
   anterior junction, or joined through the bronchi) is split by a watershed of its
   distance map seeded from the two cores left by erosion;
4. each lung is closed and its holes filled per axial slice, so that vessels and enclosed
   tumours count as lung;
5. right and left are by LPS x: patient right is −x.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from .coordinates import VolumeGeometry
from .seeds_io import LEFT_LUNG, RIGHT_LUNG


@dataclass(frozen=True)
class ThresholdLungParameters:
    air_hu: float = -400.0
    min_lung_ml: float = 30.0  # smaller air pockets (bowel gas, artefacts) are not lung
    second_lung_fraction: float = 0.2  # a second component this large relative to the first is a lung
    trachea_max_area_mm2: float = 700.0
    closing_radius_mm: float = 6.0

    def as_dict(self) -> dict:
        return asdict(self)


def segment_lungs_threshold(
    hu: np.ndarray, geometry: VolumeGeometry, params: ThresholdLungParameters | None = None
) -> dict[str, np.ndarray]:
    """Return ``{"right lung": mask, "left lung": mask}`` (bool, (k, j, i)); absent lungs are omitted."""
    params = params or ThresholdLungParameters()
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    air = hu < params.air_hu
    inside = _inside_body_air(air)
    inside &= ~_track_trachea(inside, spacing_kji, geometry.direction_matrix[2, 2] > 0, params)
    lungs = _largest_components(inside, geometry, params)
    if not lungs:
        return {}
    if len(lungs) == 1:
        lungs = _split_in_two(lungs[0], spacing_kji, geometry, params) or lungs
    named = _name_by_side(lungs, geometry)
    filled = {}
    taken = np.zeros(hu.shape, dtype=bool)
    for name, mask in named.items():
        mask = _close_and_fill(mask, spacing_kji, params.closing_radius_mm) & ~taken
        taken |= mask
        filled[name] = mask
    return filled


def _inside_body_air(air: np.ndarray) -> np.ndarray:
    """Air not connected, in 3D, to the in-plane border of the volume."""
    labels, n = ndi.label(air)
    if n == 0:
        return air
    border = np.zeros(air.shape, dtype=bool)
    border[:, 0, :] = border[:, -1, :] = border[:, :, 0] = border[:, :, -1] = True
    outside = np.unique(labels[border & air])
    return air & ~np.isin(labels, outside[outside > 0])


def _track_trachea(
    inside: np.ndarray, spacing_kji: np.ndarray, superior_is_high_k: bool, params: ThresholdLungParameters
) -> np.ndarray:
    """The trachea and main bronchi, followed down from the top slice, slice by slice.

    The trachea starts as the largest small, central air component of the top slice holding
    air. Each airway branch continues into the components of the next slice that overlap it,
    and ends where such a component grows past ``trachea_max_area_mm2`` or to 2.5 times its
    area: there it has opened into the lung.
    """
    pixel_area = spacing_kji[1] * spacing_kji[2]
    max_pixels = params.trachea_max_area_mm2 / pixel_area
    min_pixels = 20.0 / pixel_area  # smaller specks are noise, not a trachea
    airway = np.zeros(inside.shape, dtype=bool)
    ks = list(range(inside.shape[0] - 1, -1, -1) if superior_is_high_k else range(inside.shape[0]))
    centre_i = inside.shape[2] / 2.0
    branches: list[np.ndarray] = []
    for k in ks:
        labels, n = ndi.label(inside[k])
        if n == 0:
            if branches:
                break
            continue
        index = np.arange(1, n + 1)
        areas = ndi.sum_labels(np.ones_like(labels), labels, index=index)
        if not branches:
            centres = ndi.center_of_mass(np.ones_like(labels), labels, index=index)
            candidates = [
                (area, lab)
                for lab, (area, (_, ci)) in zip(index, zip(areas, centres))
                if min_pixels <= area <= max_pixels and abs(ci - centre_i) < 0.15 * inside.shape[2]
            ]
            if not candidates:
                if areas.max() > max_pixels:
                    return airway  # the lungs reach the top of the volume: no trachea above them
                continue
            branches = [labels == max(candidates)[1]]
            airway[k] = branches[0]
            continue
        next_branches = []
        for previous in branches:
            for lab in np.unique(labels[previous & (labels > 0)]):
                area = areas[lab - 1]
                if area > max_pixels or area > 2.5 * previous.sum():
                    continue  # opened into a lung
                current = labels == lab
                if not any((current & b).any() for b in next_branches):
                    next_branches.append(current)
        if not next_branches:
            break
        for b in next_branches:
            airway[k] |= b
        branches = next_branches
    return airway


def _largest_components(
    inside: np.ndarray, geometry: VolumeGeometry, params: ThresholdLungParameters
) -> list[np.ndarray]:
    labels, n = ndi.label(inside)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    min_voxels = params.min_lung_ml / geometry.voxel_volume_ml
    if sizes[order[0]] < min_voxels:
        return []
    kept = [labels == order[0] + 1]
    if n > 1 and sizes[order[1]] >= max(min_voxels, params.second_lung_fraction * sizes[order[0]]):
        kept.append(labels == order[1] + 1)
    return kept


def _split_in_two(
    mask: np.ndarray, spacing_kji: np.ndarray, geometry: VolumeGeometry, params: ThresholdLungParameters
) -> list[np.ndarray] | None:
    """Split one air component into two lungs, if it is two lungs joined by a thin bridge."""
    box = _bounding_box(mask, margin=(1, 1, 1))
    distance = np.zeros(mask.shape)
    distance[box] = ndi.distance_transform_edt(mask[box], sampling=spacing_kji)
    for depth_mm in (2.0, 4.0, 6.0, 8.0, 12.0, 16.0):
        cores, n = ndi.label(distance > depth_mm)
        if n < 2:
            continue
        sizes = np.bincount(cores.ravel())[1:]
        a, b = np.argsort(sizes)[::-1][:2] + 1
        if sizes[b - 1] < params.second_lung_fraction * sizes[a - 1]:
            continue
        markers = np.where(cores == a, 1, np.where(cores == b, 2, 0)).astype(np.int32)
        split = watershed(-distance, markers, mask=mask)
        return [split == 1, split == 2]
    return None


def _name_by_side(lungs: list[np.ndarray], geometry: VolumeGeometry) -> dict[str, np.ndarray]:
    xs = [geometry.kji_to_lps(np.array(ndi.center_of_mass(m)))[0] for m in lungs]
    if len(lungs) == 2:
        right, left = (0, 1) if xs[0] < xs[1] else (1, 0)
        return {RIGHT_LUNG: lungs[right], LEFT_LUNG: lungs[left]}
    # One lung only (a cropped volume): its side is where it lies relative to the volume centre.
    centre_x = geometry.kji_to_lps((np.asarray(geometry.shape_kji) - 1) / 2.0)[0]
    return {RIGHT_LUNG if xs[0] < centre_x else LEFT_LUNG: lungs[0]}


def _close_and_fill(mask: np.ndarray, spacing_kji: np.ndarray, radius_mm: float) -> np.ndarray:
    """Close in-plane with a disc of ``radius_mm`` and fill holes per axial slice.

    The closing is done with distance maps (dilate: distance to the mask <= r; erode: distance
    to the outside > r), which is exact for a disc and much faster than a structuring element.
    """
    out = np.zeros_like(mask)
    box = _bounding_box(mask, margin=(0, *(int(np.ceil(radius_mm / s)) + 1 for s in spacing_kji[1:])))
    if box is None:
        return out
    sub = mask[box]
    sampling = spacing_kji[1:]
    closed = np.zeros_like(sub)
    for k in np.flatnonzero(sub.any(axis=(1, 2))):
        dilated = ndi.distance_transform_edt(~sub[k], sampling=sampling) <= radius_mm
        eroded = ndi.distance_transform_edt(dilated, sampling=sampling) > radius_mm
        closed[k] = ndi.binary_fill_holes(eroded | sub[k])
    out[box] = closed
    return out


def _bounding_box(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The mask's bounding box grown by ``margin`` voxels per axis, clipped to the array."""
    if not mask.any():
        return None
    box = []
    for axis, m in enumerate(margin):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(0, idx[0] - m), min(mask.shape[axis], idx[-1] + m + 1)))
    return tuple(box)
