"""``--recon gan``: the tumour's surface from its thick slices by the ResNet → LSTM → 3D GAN
generator (:mod:`networks.slice_lstm_gan`).

The tumour gets a cubic grid (64³ to 128³ voxels as fine as the CT's in-plane spacing, axes
along the CT's, covering the tumour's box plus a slice and 3 mm) on which the network sees:
- per thick slice, top to bottom: its mask and HU, resampled in-plane onto the grid's window
  at 64²;
- on the 3D grid: the slice-interpolated signed distance map (:mod:`shape_interpolation`, in
  grid voxels) and the HU of the slice each voxel lies in (partial volume), within a slice
  thickness of the mask's edge (farther out, the mask itself).
A model configured with one channel each (the shipped one: the CT channel scored worse on
real cases) sees the mask and the distance map only. It returns occupancy logits on the grid;
the surface is their zero level, by marching cubes, in LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape
from LungTumorReconLib.surface.marching_cubes import check_mask
from LungTumorReconLib.surface.shape_interpolation import distance_on_tumour_grid, tumour_grid  # noqa: F401

if TYPE_CHECKING:
    import torch
    from vtkmodules.vtkCommonDataModel import vtkPolyData

LUNG_HU, TUMOR_HU = -850.0, 30.0
MAX_SLICES = 40
SLICE_SIZE = 64  # the slice encoder's input, in-plane
DISTANCE_CLIP = 8.0  # grid voxels


@dataclass
class GanInputs:
    slices: np.ndarray  # (S, 2, 64, 64) float32: mask, normalised HU
    volume: np.ndarray  # (2, G, G, G) float32: signed distance (grid voxels), normalised HU
    grid: VolumeGeometry  # the cubic grid, LPS


def normalised_hu(hu: np.ndarray) -> np.ndarray:
    """HU as a tumour fraction: 0 for aerated lung, 1 for solid tumour (clipped to −0.5…1.5)."""
    return np.clip((hu - LUNG_HU) / (TUMOR_HU - LUNG_HU), -0.5, 1.5).astype(np.float32)


def prepare_inputs(mask: np.ndarray, hu: np.ndarray, geometry: VolumeGeometry, min_size: int = 64,
                   max_size: int = 128) -> GanInputs:
    """The network's inputs for a thick-slice mask and its CT: see the module's docstring."""
    pad = 3
    d = distance_on_tumour_grid(mask, geometry, min_size, max_size, pad=pad)
    grid, padded, phi = d.grid, d.padded, d.phi
    hu_crop = np.pad(normalised_hu(hu[d.box]), pad, mode="edge")
    kk, jj, ii = d.axes()
    kc, jc, ic = np.meshgrid(kk, jj, ii, indexing="ij")
    distance_mm = d.distance_mm
    distance = distance_mm / grid.spacing[0]
    # HU of the slice each voxel lies in (nearest in k, linear in-plane), only within a slice
    # thickness of the mask's edge, where partial volume tells where the edge is; farther
    # out, dense neighbours (vessels, chest wall) say nothing of the tumour's shape
    gate = float(geometry.spacing[2])
    hu_volume = ndi.map_coordinates(hu_crop, [np.round(kc), jc, ic], order=1, mode="nearest")
    hu_volume = np.where(np.abs(distance_mm) <= gate, hu_volume, (distance_mm < 0).astype(np.float32))
    volume = np.stack([np.clip(distance, -DISTANCE_CLIP, DISTANCE_CLIP), hu_volume]).astype(np.float32)
    # the slices that hold tumour, plus one on each side, in-plane on the grid's window
    ks = np.flatnonzero(padded.any(axis=(1, 2)))
    k_range = np.arange(max(ks[0] - 1, 0), min(ks[-1] + 2, padded.shape[0]))[:MAX_SLICES]
    # the slices always at SLICE_SIZE² over the grid's in-plane window, whatever its size
    fraction = np.linspace(0.0, 1.0, SLICE_SIZE)
    j_slice = jj[0] + (jj[-1] - jj[0]) * fraction
    i_slice = ii[0] + (ii[-1] - ii[0]) * fraction
    j2, i2 = np.meshgrid(j_slice, i_slice, indexing="ij")
    slices = np.empty((len(k_range), 2, SLICE_SIZE, SLICE_SIZE), dtype=np.float32)
    for n, k in enumerate(k_range):
        slices[n, 0] = ndi.map_coordinates(padded[k].astype(np.float32), [j2, i2], order=1, mode="constant")
        hu_slice = np.where(np.abs(phi[k]) <= gate, hu_crop[k], (phi[k] < 0).astype(np.float32))
        slices[n, 1] = ndi.map_coordinates(hu_slice, [j2, i2], order=1, mode="nearest")
    return GanInputs(slices, volume, grid)


def grid_points_kji(geometry: VolumeGeometry, grid: VolumeGeometry) -> np.ndarray:
    """The GAN grid's voxel centres as (k, j, i) coordinates on ``geometry``'s grid.

    Parameters
    ----------
    geometry : VolumeGeometry
        The grid to express the points on (e.g. a truth's).
    grid : VolumeGeometry
        The cubic GAN grid.

    Returns
    -------
    ndarray
        (3, G³) float: k, j and i of each grid voxel, in the grid's (k, j, i) order.
    """
    g = grid.size[0]
    idx = np.stack(np.meshgrid(*(np.arange(g),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)[:, ::-1]  # (i, j, k)
    lps = grid.ijk_to_lps(idx.astype(float))
    ijk = np.linalg.solve(geometry.ijk_to_lps_matrix()[:3, :3], (lps - np.asarray(geometry.origin)).T)
    return ijk[::-1]


def truth_on_grid(truth: np.ndarray, truth_geometry: VolumeGeometry, grid: VolumeGeometry) -> np.ndarray:
    """A fine truth mask resampled (linear, > 0.5) onto the GAN grid: the training target."""
    g = grid.size[0]
    values = ndi.map_coordinates(truth.astype(np.float32), grid_points_kji(truth_geometry, grid), order=1,
                                 mode="constant")
    return values.reshape(g, g, g) > 0.5


def gan_surface(mask: np.ndarray, geometry: VolumeGeometry, hu: np.ndarray | None,
                model: torch.nn.Module | None = None, device: str = "cpu") -> vtkPolyData:
    """``--recon gan``: the zero level of the generator's occupancy logits on the tumour's grid.

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    geometry : VolumeGeometry
        The mask's grid; its shape (k, j, i) is ``mask.shape``.
    hu : ndarray or None
        The CT in HU on the same grid; None: an ideal tumour (30 HU) in lung (−850 HU).
    model : SliceLstmGan, optional
        The generator with its ``config``; the registry's ``slice-lstm-gan`` by default.
    device : str, optional
        The torch device, ``"cpu"`` by default.

    Returns
    -------
    vtkPolyData
        The closed surface in LPS mm.

    Raises
    ------
    ValueError
        If ``mask`` is not a non-empty mask on the geometry's grid, or ``hu`` is not of its shape.

    Examples
    --------
    >>> from LungTumorReconLib.networks.slice_lstm_gan import SliceLstmGan, SliceLstmGanConfig
    >>> config = SliceLstmGanConfig(slice_channels=1, volume_channels=1, resnet_widths=(4, 8), feature_size=8,
    ...                             lstm_hidden=8, generator_widths=(4, 8))
    >>> g = VolumeGeometry((12, 12, 6), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> mask = ((k - 2.5) * 3) ** 2 + (j - 5.5) ** 2 + (i - 5.5) ** 2 <= 16  # a 4 mm ball on 3 mm slices
    >>> surface = gan_surface(mask, g, None, model=SliceLstmGan(config).eval())  # untrained: the prior
    >>> surface.GetNumberOfPoints() > 0
    True
    """
    check_mask(mask, geometry)
    if hu is not None:
        check_same_shape(hu, mask.shape, "hu")
    import torch

    from LungTumorReconLib.networks.registry import load_model
    from LungTumorReconLib.surface.marching_cubes import iso_surface

    if model is None:
        model = load_model("slice-lstm-gan", device=device)
    if hu is None:
        hu = np.where(mask, TUMOR_HU, LUNG_HU).astype(np.float32)
    inputs = prepare_inputs(mask, hu, geometry)
    if model.config.slice_channels == 1:
        inputs.slices = inputs.slices[:, :1]
    if model.config.volume_channels == 1:
        inputs.volume = inputs.volume[:1]
    with torch.inference_mode():
        logits = model(
            torch.from_numpy(inputs.slices)[None].to(device),
            torch.tensor([len(inputs.slices)]),
            torch.from_numpy(inputs.volume)[None].to(device),
        )[0, 0].float().cpu().numpy()
    return iso_surface(logits, inputs.grid, 0.0)

