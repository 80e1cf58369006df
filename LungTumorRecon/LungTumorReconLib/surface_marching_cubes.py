"""``--recon mc``: the tumour surface by marching cubes (Lorensen & Cline 1987) with VTK.

The surface is returned as ``vtkPolyData`` in LPS millimetres; the scene layer writes it
the way Slicer writes models.
"""

from __future__ import annotations

import numpy as np

from .coordinates import VolumeGeometry


def mask_to_vtk_image(mask: np.ndarray, pad: int = 1):
    """A padded, cropped copy of ``mask`` as vtkImageData (unit spacing) and its IJK offset."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData

    nz = np.argwhere(mask)
    lo = nz.min(axis=0) - pad
    hi = nz.max(axis=0) + pad + 1
    crop = np.zeros(tuple(hi - lo), dtype=np.uint8)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, mask.shape)
    crop[tuple(slice(a - l, b - l) for a, b, l in zip(src_lo, src_hi, lo))] = mask[
        tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    ]
    image = vtkImageData()
    image.SetDimensions(crop.shape[2], crop.shape[1], crop.shape[0])
    scalars = numpy_to_vtk(crop.ravel(order="C"), deep=True)
    image.GetPointData().SetScalars(scalars)
    return image, lo[::-1]  # offset in IJK order


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


def marching_cubes_surface(mask: np.ndarray, geometry: VolumeGeometry):
    """Marching cubes at the 0.5 level of a binary (k, j, i) mask; vtkPolyData in LPS mm."""
    from vtkmodules.vtkFiltersCore import vtkMarchingCubes, vtkPolyDataNormals

    if not mask.any():
        raise ValueError("empty mask: no surface to build")
    image, offset_ijk = mask_to_vtk_image(mask.astype(np.uint8))
    mc = vtkMarchingCubes()
    mc.SetInputData(image)
    mc.SetValue(0, 0.5)
    mc.ComputeNormalsOff()
    mc.Update()
    to_ijk = np.eye(4)
    to_ijk[:3, 3] = offset_ijk
    surface = transform_polydata(mc.GetOutput(), geometry.ijk_to_lps_matrix() @ to_ijk)
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
