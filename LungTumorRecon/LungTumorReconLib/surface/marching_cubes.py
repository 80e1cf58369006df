"""``--recon mc`` and ``--recon mc-fairing``: the tumour surface by marching cubes (Lorensen &
Cline 1987) with VTK, and the same surface faired by windowed-sinc smoothing (Taubin,
Zhang & Golub 1996), which removes the staircase of thick slices without shrinking it.

The surface is returned as ``vtkPolyData`` in LPS millimetres; the scene layer writes it
the way Slicer writes models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry, check_volume

if TYPE_CHECKING:
    from vtkmodules.vtkCommonDataModel import vtkPolyData


def check_mask(mask: np.ndarray, geometry: VolumeGeometry) -> None:
    """Raise ``ValueError`` unless ``mask`` is a non-empty 3D (k, j, i) mask on ``geometry``'s grid:
    the argument check of every reconstruction method."""
    check_volume(mask, geometry, "mask")
    if not np.any(mask):
        raise ValueError("empty mask: no surface to build")


def crop_to_mask(mask: np.ndarray, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The mask's bounding box plus ``pad`` voxels on every side (zeros beyond the volume's
    edge too, so a surface closes there), and the box's first voxel (k, j, i), which may be
    negative."""
    nz = np.argwhere(mask)
    lo = nz.min(axis=0) - pad
    hi = nz.max(axis=0) + pad + 1
    crop = np.zeros(tuple(hi - lo), dtype=mask.dtype)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, mask.shape)
    crop[tuple(slice(a - l, b - l) for a, b, l in zip(src_lo, src_hi, lo))] = mask[
        tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    ]
    return crop, lo


def transform_polydata(polydata, matrix: np.ndarray):
    """Apply a 4×4 matrix to a vtkPolyData's points (normals are recomputed by consumers)."""
    from vtkmodules.vtkCommonTransforms import vtkTransform
    from vtkmodules.vtkFiltersGeneral import vtkTransformPolyDataFilter

    transform = vtkTransform()
    transform.SetMatrix(matrix.ravel().tolist())
    f = vtkTransformPolyDataFilter()
    f.SetTransform(transform)
    f.SetInputData(polydata)
    f.Update()
    out = f.GetOutput()
    if np.linalg.det(matrix[:3, :3]) < 0:  # a mirroring transform turns faces inside out
        from vtkmodules.vtkFiltersCore import vtkReverseSense

        rev = vtkReverseSense()
        rev.SetInputData(out)
        rev.Update()
        out = rev.GetOutput()
    return out


def marching_cubes_surface(mask: np.ndarray, geometry: VolumeGeometry) -> vtkPolyData:
    """``--recon mc``: marching cubes (VTK) at the 0.5 level of a binary (k, j, i) mask.

    The mask is cropped to its bounding box plus a voxel of background on every side, so the
    surface closes at the volume's edge too.

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    geometry : VolumeGeometry
        The mask's grid; its shape (k, j, i) is ``mask.shape``.

    Returns
    -------
    vtkPolyData
        The closed surface in LPS mm, with consistently oriented normals.

    Raises
    ------
    ValueError
        If ``mask`` is not 3D, its shape is not the geometry's, the spacing is not positive, or
        the mask is empty.

    Examples
    --------
    >>> g = VolumeGeometry((12, 12, 6), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> mask = ((k - 2.5) * 3) ** 2 + (j - 5.5) ** 2 + (i - 5.5) ** 2 <= 16  # a 4 mm ball on 3 mm slices
    >>> round(surface_volume_ml(marching_cubes_surface(mask, g)), 3)
    0.245
    """
    check_mask(mask, geometry)
    crop, offset_kji = crop_to_mask(mask.astype(np.uint8))
    return iso_surface(crop, geometry, 0.5, offset_kji)


def iso_surface(values: np.ndarray, geometry: VolumeGeometry, level: float, offset_kji=(0, 0, 0)):
    """Marching cubes of a (k, j, i) array whose voxel (0, 0, 0) is ``offset_kji`` on
    ``geometry``'s grid; vtkPolyData in LPS mm."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkMarchingCubes

    image = vtkImageData()
    image.SetDimensions(*values.shape[::-1])
    image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(values).ravel(), deep=True))
    mc = vtkMarchingCubes()
    mc.SetInputData(image)
    mc.SetValue(0, level)
    mc.ComputeNormalsOff()
    mc.Update()
    to_ijk = np.eye(4)
    to_ijk[:3, 3] = np.asarray(offset_kji, dtype=float)[::-1]
    return with_normals(transform_polydata(mc.GetOutput(), geometry.ijk_to_lps_matrix() @ to_ijk))


FAIRING_ITERATIONS = 30
FAIRING_PASS_BAND = 0.01  # strong smoothing (VTK's range is 0–2)


def fair_surface(polydata, iterations: int = FAIRING_ITERATIONS, pass_band: float = FAIRING_PASS_BAND):
    """Windowed-sinc fairing: a low-pass filter on the mesh, so the surface keeps its volume
    (unlike Laplacian smoothing, which shrinks it). ``pass_band`` 0.01 is strong smoothing;
    coordinates are normalised first, as VTK recommends, so it does not depend on the size."""
    from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter

    f = vtkWindowedSincPolyDataFilter()
    f.SetInputData(polydata)
    f.SetNumberOfIterations(iterations)
    f.SetPassBand(pass_band)
    f.NormalizeCoordinatesOn()
    f.BoundarySmoothingOff()
    f.FeatureEdgeSmoothingOff()
    f.NonManifoldSmoothingOn()
    f.Update()
    return with_normals(f.GetOutput())


def marching_cubes_fairing_surface(mask: np.ndarray, geometry: VolumeGeometry) -> vtkPolyData:
    """``--recon mc-fairing``: marching cubes, then windowed-sinc fairing (:func:`fair_surface`).

    Parameters
    ----------
    mask : ndarray
        The tumour, bool (k, j, i), not empty.
    geometry : VolumeGeometry
        The mask's grid; its shape (k, j, i) is ``mask.shape``.

    Returns
    -------
    vtkPolyData
        The faired closed surface in LPS mm: the staircase of thick slices smoothed away
        (``FAIRING_ITERATIONS`` iterations, pass band ``FAIRING_PASS_BAND``).

    Raises
    ------
    ValueError
        If ``mask`` is not 3D, its shape is not the geometry's, the spacing is not positive, or
        the mask is empty.

    Examples
    --------
    >>> g = VolumeGeometry((12, 12, 6), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    >>> k, j, i = np.indices(g.shape_kji)
    >>> mask = ((k - 2.5) * 3) ** 2 + (j - 5.5) ** 2 + (i - 5.5) ** 2 <= 16
    >>> round(surface_volume_ml(marching_cubes_fairing_surface(mask, g)), 3)
    0.195
    """
    check_mask(mask, geometry)
    return fair_surface(marching_cubes_surface(mask, geometry))


def with_normals(surface):
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals

    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.SplittingOff()
    normals.Update()
    return normals.GetOutput()


def surface_volume_ml(polydata) -> float:
    """Enclosed volume of a closed surface, in mL (vtkMassProperties)."""
    from vtkmodules.vtkFiltersCore import vtkMassProperties, vtkTriangleFilter

    tri = vtkTriangleFilter()
    tri.SetInputData(polydata)
    mp = vtkMassProperties()
    mp.SetInputConnection(tri.GetOutputPort())
    mp.Update()
    return float(mp.GetVolume()) / 1000.0


def surface_to_mask(polydata_lps, geometry: VolumeGeometry) -> np.ndarray:
    """Voxelise a closed surface (LPS mm) on ``geometry``'s grid: (k, j, i) bool, True for
    voxel centres inside it (vtkPolyDataToImageStencil). For scoring surfaces against masks."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkImagingStencil import vtkImageStencil, vtkPolyDataToImageStencil

    surface_ijk = transform_polydata(polydata_lps, np.linalg.inv(geometry.ijk_to_lps_matrix()))
    ni, nj, nk = geometry.size
    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputData(surface_ijk)
    stencil.SetOutputOrigin(0.0, 0.0, 0.0)
    stencil.SetOutputSpacing(1.0, 1.0, 1.0)
    stencil.SetOutputWholeExtent(0, ni - 1, 0, nj - 1, 0, nk - 1)
    stencil.Update()
    blank = vtkImageData()
    blank.SetDimensions(ni, nj, nk)
    blank.AllocateScalars(3, 1)  # VTK_UNSIGNED_CHAR
    vtk_to_numpy(blank.GetPointData().GetScalars())[:] = 1
    apply = vtkImageStencil()
    apply.SetInputData(blank)
    apply.SetStencilConnection(stencil.GetOutputPort())
    apply.ReverseStencilOff()
    apply.SetBackgroundValue(0)
    apply.Update()
    return vtk_to_numpy(apply.GetOutput().GetPointData().GetScalars()).reshape(nk, nj, ni).astype(bool)
