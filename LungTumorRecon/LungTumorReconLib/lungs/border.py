"""Lungs that keep what lies against the pleura: bridging the indentations a tumour makes.

A juxta-pleural tumour is as dense as the chest wall, so every air-based lung method (the
threshold, the snake) leaves it out: the lung comes back with a bite where the tumour is.
This step puts such bites back, for any lung method:

1. a 3D morphological closing of each lung with a ball of radius ``R``
   (``closing = erosion(dilation(lung, B_R), B_R)``, computed from two Euclidean distance
   maps on a coarser grid). A ball of radius ``R`` cannot enter an indentation narrower than
   itself, so the closing fills the bites of masses narrower than ``2R``, while the lung's
   convex outer surface against the ribs is left as it is; ``R`` well above the mass's radius
   also fills the rim against the pleura, where a ball as small as the mass would bulge in;
2. what the closing added is kept where it is soft tissue (not air outside the lung, not
   bone) and forms a component that is
   * thick (``min_thickness_mm``): not a sliver along a rib or in a corner of the outline;
   * not medial to the lung: the mediastinum, the heart, the hilum's vessels and the
     paravertebral gutter are all concavities on the lung's medial side;
   * not at the lung's apex or base inside the volume, and with lung below it: the lung's base
     wraps around the diaphragm's dome, which is a concavity with no lung under it;
   * lined with lung on its inner side, on its own slices (towards the lung's centre).

Written by hand in the spirit of the rolling-ball and adaptive border marching methods
(Pu et al., 2008); no maintained library bridges pleural indentations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape, check_volume
from LungTumorReconLib.io.seeds import RIGHT_LUNG
from LungTumorReconLib.lungs.air import block_expand, block_reduce, bounding_box


@dataclass(frozen=True)
class PleuralBridgeParameters:
    ball_radius_mm: float = 40.0  # well above a mass's radius, so the rim against the pleura fills too
    grid_mm: float = 2.5  # the closing runs on a grid about this coarse
    soft_tissue_hu: tuple[float, float] = (-600.0, 300.0)  # added voxels: partial volume to soft tissue
    min_thickness_mm: float = 4.0  # kept components are this thick (in-plane distance to their edge)
    medial_margin_mm: float = 5.0  # components centred this far medial of the lung's centre are not lung
    end_margin_mm: float = 8.0  # components this near the lung's apex or base (inside the volume) are not lung
    min_lung_share: float = 0.5  # the share of a component with lung below it, and with lung towards the lung's centre

    def as_dict(self) -> dict:
        return asdict(self)


def bridge_pleural_indentations(
    lungs: dict[str, np.ndarray], hu: np.ndarray, geometry: VolumeGeometry,
    params: PleuralBridgeParameters | None = None,
) -> dict[str, np.ndarray]:
    """Each lung with the pleural indentations it wraps filled (see the module's docstring).

    Parameters
    ----------
    lungs : dict of str to ndarray
        ``{"right lung": mask, "left lung": mask}``, bool (k, j, i) masks on ``hu``'s grid.
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid.
    params : PleuralBridgeParameters, optional
        The ball's radius, the working grid and the rules that keep a component;
        ``PleuralBridgeParameters()`` by default.

    Returns
    -------
    dict of str to ndarray
        The same lungs, each a superset of the input; no voxel is given to both lungs.

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, a lung mask is not of ``hu``'s shape, or
        ``ball_radius_mm`` or ``grid_mm`` is not positive.

    Examples
    --------
    >>> g = VolumeGeometry((32, 32, 32), (2.5, 2.5, 2.5), (-80.0, -40.0, 0.0))  # x < 0: a right lung
    >>> k, j, i = np.indices(g.shape_kji)
    >>> box = (k >= 2) & (k < 30) & (j >= 4) & (j < 28) & (i >= 4) & (i < 28)
    >>> bite = box & ((k - 16) ** 2 + (j - 16) ** 2 + (i - 4) ** 2 <= 36)  # a mass against the lateral wall
    >>> hu = np.where(box & ~bite, -850.0, 40.0)
    >>> out = bridge_pleural_indentations({"right lung": box & ~bite}, hu, g)
    >>> int(bite.sum()), int((out["right lung"] & bite).sum())
    (519, 514)
    """
    check_volume(hu, geometry)
    for name, mask in lungs.items():
        check_same_shape(mask, hu.shape, f"the {name} mask")
    params = params or PleuralBridgeParameters()
    if params.ball_radius_mm <= 0 or params.grid_mm <= 0:
        raise ValueError("ball_radius_mm and grid_mm must be positive")
    taken = np.zeros(hu.shape, dtype=bool)
    for mask in lungs.values():
        taken |= mask
    out = {}
    for name, lung in lungs.items():
        added = pleural_indentations(lung, name, hu, geometry, params) & ~taken
        taken |= added
        out[name] = lung | added
    return out


def pleural_indentations(
    lung: np.ndarray, name: str, hu: np.ndarray, geometry: VolumeGeometry, params: PleuralBridgeParameters
) -> np.ndarray:
    """The voxels that bridging adds to one lung (bool, (k, j, i)). The closing and the choice
    of components run on a grid about ``params.grid_mm`` coarse; the kept components are then
    cut to the soft-tissue voxels of the CT's own grid."""
    spacing = np.asarray(geometry.spacing[::-1], dtype=float)  # k, j, i
    radius = params.ball_radius_mm
    margin = tuple(int(np.ceil(radius / s)) + 1 for s in spacing)
    box = bounding_box(lung, margin)
    added = np.zeros(lung.shape, dtype=bool)
    if box is None:
        return added
    sub, sub_hu = lung[box], hu[box]
    factor = np.maximum(1, np.rint(params.grid_mm / spacing)).astype(int)
    coarse_lung = block_reduce(sub, factor, np.any)
    coarse_hu = block_reduce(sub_hu.astype(np.float32), factor, np.mean)
    sampling = spacing * factor
    low, high = params.soft_tissue_hu
    # beyond the volume is not lung: padded, else the closing would run along a cropped edge
    pad = [(int(np.ceil(radius / s)) + 1,) * 2 for s in sampling]
    dilated = ndi.distance_transform_edt(~np.pad(coarse_lung, pad), sampling=sampling) <= radius
    closed = (ndi.distance_transform_edt(dilated, sampling=sampling) > radius)[
        tuple(slice(a, a + n) for (a, _), n in zip(pad, coarse_lung.shape))]
    candidate = closed & ~coarse_lung & (coarse_hu >= low) & (coarse_hu < high)
    keep = _lung_like_components(candidate, coarse_lung, name, geometry, box, factor, sampling, params)
    if not keep.any():
        return added
    fine_keep = block_expand(keep | (closed & coarse_lung & ndi.binary_dilation(keep)), factor, sub.shape)
    soft = (sub_hu >= low) & (sub_hu < high)
    bridged = fine_keep & ~sub & soft
    # one voxel more in-plane: the ball's discrete surface stops a voxel short of the pleura
    rim = ndi.binary_dilation(bridged, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    within_reach = block_expand(ndi.binary_dilation(closed), factor, sub.shape)
    added[box] = bridged | (rim & ~sub & soft & within_reach)
    return added


def _lung_like_components(candidate, coarse_lung, name, geometry, box, factor, sampling, params) -> np.ndarray:
    """The components of ``candidate`` (coarse grid) that are thick, not medial, and not at the
    lung's apex or base; see the module's docstring."""
    labels, n = ndi.label(candidate)
    if n == 0:
        return candidate
    index = np.arange(1, n + 1)
    # thickness: the largest in-plane distance to the component's edge, less half a voxel
    depth = np.zeros(candidate.shape, dtype=float)
    for k in np.flatnonzero(candidate.any(axis=(1, 2))):
        depth[k] = ndi.distance_transform_edt(candidate[k], sampling=sampling[1:])
    thickness = np.asarray(ndi.maximum(depth, labels, index)) - 0.5 * max(sampling[1:])
    volume_mm3 = np.bincount(labels.ravel(), minlength=n + 1)[1:] * float(np.prod(sampling))
    min_volume_mm3 = 4.0 / 3.0 * np.pi * params.min_thickness_mm**3

    def to_lps(coarse_kji):  # coarse voxel centres -> LPS
        fine = (np.asarray(coarse_kji, dtype=float) + 0.5) * factor - 0.5 + [s.start for s in box]
        return geometry.kji_to_lps(fine)

    centres = to_lps(np.asarray(ndi.center_of_mass(candidate, labels, index)).reshape(n, 3))
    lung_centre_kji = np.asarray(ndi.center_of_mass(coarse_lung))
    lung_centre = to_lps(lung_centre_kji)
    lateral = -1.0 if name == RIGHT_LUNG else 1.0  # patient right is LPS -x
    lateral_offset = (centres[:, 0] - lung_centre[0]) * lateral

    lung_k = np.flatnonzero(coarse_lung.any(axis=(1, 2)))
    first, last = lung_k[0], lung_k[-1]
    end = int(np.ceil(params.end_margin_mm / sampling[0]))
    first_open = box[0].start + first * factor[0] > 0  # the lung ends inside the volume there
    last_open = box[0].start + (last + 1) * factor[0] < geometry.shape_kji[0]
    reach = int(np.ceil(params.ball_radius_mm / sampling[0]))
    in_plane_reach = int(np.ceil(params.ball_radius_mm / min(sampling[1:])))
    inferior_is_low_k = geometry.direction_matrix[2, 2] > 0  # LPS z grows towards the head
    keep = np.zeros(n + 1, dtype=bool)
    for m, objects in enumerate(ndi.find_objects(labels)):
        ks = objects[0]
        near_end = (first_open and ks.start <= first + end) or (last_open and ks.stop - 1 >= last - end)
        if (thickness[m] < params.min_thickness_mm or volume_mm3[m] < min_volume_mm3
                or lateral_offset[m] < -params.medial_margin_mm or near_end):
            continue
        component = labels[objects] == m + 1
        keep[m + 1] = (_lung_below(component, coarse_lung, objects, reach, inferior_is_low_k) >= params.min_lung_share
                       and _lung_inward(component, coarse_lung, objects, lung_centre_kji, in_plane_reach)
                       >= params.min_lung_share)
    return keep[labels]


def _lung_inward(component: np.ndarray, lung: np.ndarray, objects: tuple[slice, ...], centre_kji: np.ndarray,
                 reach: int) -> float:
    """The share of the component's voxels that see lung on their own slice within ``reach``
    voxels on the way towards the lung's centre. A bite in the lung's wall is lung-lined on its
    inner side; a wedge of diaphragm between the lung above the dome and the costophrenic recess
    below it has only liver inside it."""
    kk, jj, ii = np.nonzero(component)
    kk, jj, ii = kk + objects[0].start, jj + objects[1].start, ii + objects[2].start
    dj, di = centre_kji[1] - jj, centre_kji[2] - ii
    norm = np.maximum(np.hypot(dj, di), 1e-9)
    dj, di = dj / norm, di / norm
    seen = np.zeros(len(kk), dtype=bool)
    for step in range(1, reach + 1):
        j = np.clip(np.rint(jj + step * dj).astype(int), 0, lung.shape[1] - 1)
        i = np.clip(np.rint(ii + step * di).astype(int), 0, lung.shape[2] - 1)
        seen |= lung[kk, j, i]
    return float(seen.mean()) if len(seen) else 0.0


def _lung_below(component: np.ndarray, lung: np.ndarray, objects: tuple[slice, ...], reach: int,
                inferior_is_low_k: bool) -> float:
    """The share of the component's axial footprint with lung below it (inferior) within
    ``reach`` slices. A bite in the lung's wall has lung below it, even near the apex; the
    diaphragm's dome, which the lung's base wraps, has none. Beyond the volume counts as lung
    (unknown)."""
    footprint = component.any(axis=0)
    ks, js, is_ = objects
    if inferior_is_low_k:
        below = slice(ks.start - reach, ks.start) if ks.start - reach >= 0 else None
    else:
        below = slice(ks.stop, ks.stop + reach) if ks.stop + reach <= lung.shape[0] else None
    if below is None:
        return 1.0
    columns = lung[below, js, is_].any(axis=0)
    return float((footprint & columns).sum() / max(1, footprint.sum()))
