"""Air inside the lungs' reach: the shared first steps of every lung method.

* air = HU < ``air_hu``; air connected to the in-plane border of the volume is outside the
  body; when that leaves no lung (a cropped volume whose lung reaches the crop border),
  only air connected to the in-plane corners counts as outside;
* the trachea is followed down from the top slice as a small central air column, with its
  branches until they open into a lung, and removed;
* helpers to pick the largest components, split two joined lungs, name them by side (patient
  right is LPS −x), and close and fill a mask per axial slice.

All sizes are in millimetres so that they hold at any voxel size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG


@dataclass(frozen=True)
class LungAirParameters:
    air_hu: float = -400.0
    min_lung_ml: float = 30.0  # smaller air pockets (bowel gas, artefacts) are not lung
    second_lung_fraction: float = 0.2  # a second component this large relative to the first is a lung
    trachea_max_area_mm2: float = 700.0
    closing_radius_mm: float = 6.0
    min_lung_separation_mm: float = 60.0  # two lungs' centroids lie at least this far apart in x
    max_hole_mm2: float = 2500.0  # holes up to this (vessels, tumours up to ~5.6 cm) are lung; larger
    # ones are what a lung wraps around at its base (the diaphragm's dome), not lung
    bridge_pleura: bool = True  # put back what a tumour against the pleura bites out (lung_border)

    def as_dict(self) -> dict:
        return asdict(self)


def lung_air(hu: np.ndarray, geometry: VolumeGeometry, params: LungAirParameters) -> np.ndarray:
    """Air inside the body with the trachea and main bronchi removed, (k, j, i) bool."""
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    air = hu < params.air_hu
    inside = inside_body_air(air)
    if not largest_components(inside, geometry, params):
        inside = inside_body_air(air, corners_only=True)
    inside &= ~track_airways(inside, spacing_kji, geometry.direction_matrix[2, 2] > 0, params)
    return inside


def inside_body_air(air: np.ndarray, corners_only: bool = False) -> np.ndarray:
    """Air not connected, in 3D, to the in-plane border of the volume.

    With ``corners_only`` (for cropped volumes, whose lung may reach the crop border), only
    air components that reach at least two in-plane corners are outside: air around a body
    surrounds it, while a cropped lung reaches one corner at most.
    """
    labels, n = ndi.label(air)
    if n == 0:
        return air
    if corners_only:
        corner_hits = np.zeros(n + 1, dtype=int)
        for column in (labels[:, 0, 0], labels[:, 0, -1], labels[:, -1, 0], labels[:, -1, -1]):
            corner_hits[np.unique(column)] += 1
        corner_hits[0] = 0
        outside = np.flatnonzero(corner_hits >= 2)
        return air & ~np.isin(labels, outside)
    border = np.zeros(air.shape, dtype=bool)
    border[:, 0, :] = border[:, -1, :] = border[:, :, 0] = border[:, :, -1] = True
    outside = np.unique(labels[border & air])
    return air & ~np.isin(labels, outside[outside > 0])


def track_airways(
    inside: np.ndarray, spacing_kji: np.ndarray, superior_is_high_k: bool, params: LungAirParameters
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


def largest_components(
    inside: np.ndarray, geometry: VolumeGeometry, params: LungAirParameters
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
        second = labels == order[1] + 1
        if _side_by_side(kept[0], second, geometry, params):
            kept.append(second)
    return kept


def _side_by_side(a: np.ndarray, b: np.ndarray, geometry: VolumeGeometry, params: LungAirParameters) -> bool:
    """Two lungs lie side by side: their centroids are far apart along LPS x."""
    xa = geometry.kji_to_lps(np.array(ndi.center_of_mass(a)))[0]
    xb = geometry.kji_to_lps(np.array(ndi.center_of_mass(b)))[0]
    return abs(xa - xb) >= params.min_lung_separation_mm


def split_in_two(
    mask: np.ndarray,
    spacing_kji: np.ndarray,
    geometry: VolumeGeometry,
    params: LungAirParameters,
    _geometry_check: bool = True,
) -> list[np.ndarray] | None:
    """Split one air component into two lungs, if it is two lungs joined by a thin bridge.

    Large slices are split on a 2× coarser in-plane grid (a quarter of the work); every fine
    voxel then takes the side of its coarse voxel.
    """
    if min(mask.shape[1:]) > 256:
        coarse = mask[:, ::2, ::2]
        parts = split_in_two(coarse, spacing_kji * np.array([1, 2, 2]), geometry, params, _geometry_check=False)
        if parts is None:
            return None
        first = block_expand(parts[0], IN_PLANE_2X, mask.shape)
        parts = [mask & first, mask & ~first]
        return parts if _side_by_side(parts[0], parts[1], geometry, params) else None
    box = bounding_box(mask, margin=(1, 1, 1))
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
        parts = [split == 1, split == 2]
        if _plausible_pair(parts, geometry, params, _geometry_check):
            return parts
    return _split_by_sides(mask, distance, spacing_kji, geometry, params, _geometry_check)


def _plausible_pair(
    parts: list[np.ndarray], geometry: VolumeGeometry, params: LungAirParameters, check_sides: bool
) -> bool:
    """Two lungs meet over a narrow junction, much smaller than a lung's own sagittal
    section (a single lung cut in two is refused), and (on the full grid) lie side by side."""
    axis = geometry.axis_of_patient(0)  # the array axis along patient left-right
    junction = (parts[0] & ndi.binary_dilation(parts[1])).sum()
    smaller = min(parts, key=lambda m: m.sum())
    section = smaller.sum(axis=tuple(a for a in range(3) if a != axis)).max()
    if junction > 0.3 * section:
        return False
    return not check_sides or _side_by_side(parts[0], parts[1], geometry, params)


def _split_by_sides(
    mask: np.ndarray,
    distance: np.ndarray,
    spacing_kji: np.ndarray,
    geometry: VolumeGeometry,
    params: LungAirParameters,
    check: bool,
) -> list[np.ndarray] | None:
    """Lungs that touch over a broad contact keep one core at any erosion depth. Flood from
    their lateral parts instead (beyond ``min_lung_separation_mm / 2`` from the centre, left
    and right); the split must still pass :func:`_plausible_pair`.
    """
    axis = geometry.axis_of_patient(0)  # the array axis along patient left-right
    index = np.arange(mask.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
    counts = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    centre = float((np.arange(len(counts)) * counts).sum() / max(counts.sum(), 1))
    half = params.min_lung_separation_mm / 2 / spacing_kji[axis]
    deep = distance > 2.0
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[mask & deep & (index < centre - half)] = 1
    markers[mask & deep & (index > centre + half)] = 2
    if not (markers == 1).any() or not (markers == 2).any():
        return None
    split = watershed(-distance, markers, mask=mask)
    parts = [split == 1, split == 2]
    return parts if _plausible_pair(parts, geometry, params, check) else None


IN_PLANE_2X = (1, 2, 2)  # a block factor: 2x coarser in-plane, every slice kept


def block_reduce(array: np.ndarray, factor, reduce) -> np.ndarray:
    """``array`` on a grid ``factor`` times coarser per axis, each block reduced by ``reduce``
    (``np.any``, ``np.mean``). Edge blocks are padded by repeating the edge, so that a mean there
    is not pulled toward a constant. (scikit-image's ``block_reduce`` pads with a constant.)"""
    factor = np.asarray(factor)
    shape = np.asarray(array.shape)
    padded_shape = -(-shape // factor) * factor
    padded = np.pad(array, [(0, int(p - s)) for p, s in zip(padded_shape, shape)], mode="edge")
    blocks = padded.reshape(padded_shape[0] // factor[0], factor[0], padded_shape[1] // factor[1], factor[1],
                            padded_shape[2] // factor[2], factor[2])
    return reduce(blocks, axis=(1, 3, 5))


def block_expand(coarse: np.ndarray, factor, shape: tuple[int, int, int]) -> np.ndarray:
    """Back from a grid ``factor`` times coarser to ``shape``: each voxel takes its block's value."""
    fine = coarse.repeat(factor[0], axis=0).repeat(factor[1], axis=1).repeat(factor[2], axis=2)
    return fine[tuple(slice(0, s) for s in shape)]


def name_by_side(lungs: list[np.ndarray], geometry: VolumeGeometry) -> dict[str, np.ndarray]:
    xs = [geometry.kji_to_lps(np.array(ndi.center_of_mass(m)))[0] for m in lungs]
    if len(lungs) == 2:
        right, left = (0, 1) if xs[0] < xs[1] else (1, 0)
        return {RIGHT_LUNG: lungs[right], LEFT_LUNG: lungs[left]}
    # One lung only (a cropped volume): the scanner's isocentre (x = 0) lies near the
    # patient's midline, so the sign of x tells the side.
    return {RIGHT_LUNG if xs[0] < 0 else LEFT_LUNG: lungs[0]}


def close_2d(mask2d: np.ndarray, sampling: tuple[float, float], radius_mm: float) -> np.ndarray:
    """Morphological closing with a disc, by distance maps: exact for a disc and fast at any
    radius (dilate: distance to the mask <= r; erode: distance to the outside > r)."""
    dilated = ndi.distance_transform_edt(~mask2d, sampling=sampling) <= radius_mm
    return ndi.distance_transform_edt(dilated, sampling=sampling) > radius_mm


def fill_small_holes(mask2d: np.ndarray, max_pixels: float) -> np.ndarray:
    """Fill the holes of a 2D mask that are at most ``max_pixels`` large."""
    holes = ndi.binary_fill_holes(mask2d) & ~mask2d
    if not holes.any():
        return mask2d.copy()
    labels, n = ndi.label(holes)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    small = np.flatnonzero(areas <= max_pixels)
    return mask2d | np.isin(labels, small[small > 0])


def close_and_fill(
    mask: np.ndarray, spacing_kji: np.ndarray, radius_mm: float, max_hole_mm2: float = np.inf
) -> np.ndarray:
    """Close in-plane with a disc of ``radius_mm`` (:func:`close_2d`) and fill the holes up to
    ``max_hole_mm2``, per axial slice."""
    out = np.zeros_like(mask)
    box = bounding_box(mask, margin=(0, *(int(np.ceil(radius_mm / s)) + 1 for s in spacing_kji[1:])))
    if box is None:
        return out
    sub = mask[box]
    sampling = spacing_kji[1:]
    closed = np.zeros_like(sub)
    max_hole_pixels = max_hole_mm2 / (sampling[0] * sampling[1])
    for k in np.flatnonzero(sub.any(axis=(1, 2))):
        closed[k] = fill_small_holes(close_2d(sub[k], sampling, radius_mm) | sub[k], max_hole_pixels)
    out[box] = closed
    return out


def bounding_box(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The mask's bounding box grown by ``margin`` voxels per axis, clipped to the array."""
    if not mask.any():
        return None
    box = []
    for axis, m in enumerate(margin):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(0, idx[0] - m), min(mask.shape[axis], idx[-1] + m + 1)))
    return tuple(box)
