"""Measurements and metrics on shapes whose answers are known in closed form."""

import numpy as np
import pytest

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.evaluation import compare_masks, dice
from LungTumorReconLib.tumor.measurements import measure_tumor, split_tumors
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.surface.marching_cubes import marching_cubes_surface, surface_volume_ml


def ellipsoid(shape, spacing, radii_mm):
    centre = (np.array(shape) - 1) / 2
    grids = np.indices(shape).astype(float)
    d = sum((((g - c) * s) / r) ** 2 for g, c, s, r in zip(grids, centre, spacing, radii_mm))
    return d <= 1.0


def test_sphere_volume_diameter_sphericity():
    g = VolumeGeometry((80, 80, 80), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0))
    mask = ellipsoid(g.shape_kji, g.spacing[::-1], (15.0, 15.0, 15.0))
    hu = np.where(mask, 30, -800).astype(np.int16)
    m = measure_tumor(mask, hu, g, None)
    assert m.volume_ml == pytest.approx(4 / 3 * np.pi * 15**3 / 1000, rel=0.02)
    assert m.max_3d_diameter_mm == pytest.approx(30.0, abs=1.0)
    assert m.longest_axial_diameter_mm == pytest.approx(30.0, abs=1.0)
    assert m.short_axis_mm == pytest.approx(30.0, abs=1.0)
    assert 0.85 < m.sphericity <= 1.0
    assert m.mean_hu == 30 and m.std_hu == 0
    assert np.allclose(m.centroid_lps, [19.75, 19.75, 19.75])


def test_elongated_tumour_axes_in_anisotropic_voxels():
    g = VolumeGeometry((100, 100, 20), (0.6, 0.6, 2.5), (0.0, 0.0, 0.0))
    mask = ellipsoid(g.shape_kji, g.spacing[::-1], (20.0, 10.0, 25.0))  # z, y, x radii
    m = measure_tumor(mask, np.zeros(mask.shape), g, None)
    assert m.longest_axial_diameter_mm == pytest.approx(50.0, abs=1.5)
    assert m.short_axis_mm == pytest.approx(20.0, abs=1.5)
    assert m.max_3d_diameter_mm == pytest.approx(50.0, abs=2.0)
    assert m.sphericity < 0.9


def test_split_tumours_by_seed():
    g = VolumeGeometry((40, 40, 40), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    mask = np.zeros(g.shape_kji, bool)
    mask[5:10, 5:10, 5:10] = True
    mask[25:35, 25:35, 25:35] = True
    parts = split_tumors(mask, g, [Seed("tumor", (30.0, 30.0, 30.0)), Seed("tumor", (7.0, 7.0, 12.0))])
    assert [p.sum() for _, p in parts] == [1000, 125]  # the second seed lies next to the small one
    assert len(split_tumors(mask, g, [])) == 2


def test_marching_cubes_surface_volume_and_position():
    g = VolumeGeometry((60, 60, 30), (0.7, 0.7, 2.0), (-50.0, 10.0, -200.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    mask = ellipsoid(g.shape_kji, g.spacing[::-1], (12.0, 12.0, 12.0))
    surface = marching_cubes_surface(mask, g)
    assert surface_volume_ml(surface) == pytest.approx(4 / 3 * np.pi * 12**3 / 1000, rel=0.05)
    from vtkmodules.util.numpy_support import vtk_to_numpy

    centre = vtk_to_numpy(surface.GetPoints().GetData()).mean(axis=0)
    assert np.allclose(centre, g.kji_to_lps((np.array(g.shape_kji) - 1) / 2), atol=0.5)


def test_compare_masks_on_shifted_cubes():
    a = np.zeros((20, 20, 20), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.roll(a, 2, axis=2)
    m = compare_masks(a, b, (1.0, 1.0, 2.0))
    assert m["dice"] == pytest.approx(0.8)
    assert m["iou"] == pytest.approx(8 / 12)
    assert m["hd_mm"] == pytest.approx(4.0)  # two voxels of 2 mm along i
    assert dice(a, b) == pytest.approx(0.8)
    empty = compare_masks(a, np.zeros_like(a), (1.0, 1.0, 1.0))
    assert empty["dice"] == 0.0 and empty["hd_mm"] is None


def test_split_and_measure_work_in_the_tumours_box(chest64):
    """A seed beside the tumour takes the nearest component, and the measures do not depend on
    where the tumour lies in the volume (they are computed in its bounding box)."""
    g = chest64.geometry
    mask = np.zeros(g.shape_kji, dtype=bool)
    mask[20:26, 40:50, 30:38] = True
    mask[5:8, 10:14, 10:14] = True
    beside = Seed("tumor", tuple(float(v) for v in g.kji_to_lps(np.array([22, 52, 33]))))
    (seed, one), = split_tumors(mask, g, [beside])
    assert one.sum() == 6 * 10 * 8 and one[22, 45, 33]
    moved = np.roll(one, (-10, 7, 5), axis=(0, 1, 2))
    hu_moved = np.roll(chest64.array, (-10, 7, 5), axis=(0, 1, 2))
    a, b = measure_tumor(one, chest64.array, g, seed), measure_tumor(moved, hu_moved, g, seed)
    assert a.volume_ml == b.volume_ml and a.max_3d_diameter_mm == pytest.approx(b.max_3d_diameter_mm)
    assert a.longest_axial_diameter_mm == pytest.approx(b.longest_axial_diameter_mm) and a.mean_hu == b.mean_hu
    shift = g.kji_to_lps(np.array([-10, 7, 5])) - g.kji_to_lps(np.zeros(3))
    assert np.allclose(np.array(b.centroid_lps) - a.centroid_lps, shift)


def test_the_recist_axes_end_points_lie_on_the_tumour_as_measured():
    """An ellipse-shaped tumour, 50 mm along x and 20 mm along y, rotated in the CT's frame and
    placed off-centre: the two axes' end points (LPS) are on one axial slice, as long as the
    diameters, perpendicular, the long one along x and both through the tumour's centre."""
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    g = VolumeGeometry((120, 120, 12), (0.6, 0.6, 2.5), (-40.0, 25.0, -100.0), tuple(rot.ravel()))
    k, j, i = np.indices(g.shape_kji)
    lps = g.kji_to_lps(np.stack([k, j, i], axis=-1).reshape(-1, 3).astype(float)).reshape(*g.shape_kji, 3)
    centre = g.kji_to_lps(np.array([6.0, 60.0, 60.0]))
    d = lps - centre
    mask = ((d[..., 0] / 25.0) ** 2 + (d[..., 1] / 10.0) ** 2 <= 1.0) & (np.abs(d[..., 2]) <= 6.0)
    m = measure_tumor(mask, np.zeros(mask.shape), g, None)
    long_ends, short_ends = np.array(m.longest_axis_lps), np.array(m.short_axis_lps)
    assert long_ends.shape == short_ends.shape == (2, 3)
    assert np.linalg.norm(long_ends[1] - long_ends[0]) == pytest.approx(m.longest_axial_diameter_mm, abs=1e-6)
    assert np.linalg.norm(short_ends[1] - short_ends[0]) == pytest.approx(m.short_axis_mm, abs=1e-6)
    assert m.longest_axial_diameter_mm == pytest.approx(50.0, abs=1.5)
    assert m.short_axis_mm == pytest.approx(20.0, abs=1.5)
    slices = {g.nearest_kji(p)[0] for p in [*long_ends, *short_ends]}
    assert len(slices) == 1  # all four on the slice where the longest diameter was measured
    long_dir = (long_ends[1] - long_ends[0]) / m.longest_axial_diameter_mm
    short_dir = (short_ends[1] - short_ends[0]) / m.short_axis_mm
    assert abs(long_dir @ short_dir) < 1e-6  # perpendicular
    assert abs(long_dir[0]) == pytest.approx(1.0, abs=0.02)  # along x, whatever the voxel grid's rotation
    assert np.allclose(long_ends.mean(axis=0)[:2], centre[:2], atol=1.0)
    assert np.allclose(short_ends.mean(axis=0)[:2], centre[:2], atol=1.0)
