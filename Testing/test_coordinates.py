import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry, ijk_to_kji, kji_to_ijk, lps_to_ras, ras_to_lps


def oblique_geometry() -> VolumeGeometry:
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return VolumeGeometry((30, 20, 10), (0.7, 0.8, 2.5), (-100.0, 50.0, -300.0), tuple(rot.ravel()))


def test_lps_ras_round_trip_flips_x_and_y():
    p = np.array([[10.0, -20.0, 30.0]])
    assert np.allclose(lps_to_ras(p), [[-10.0, 20.0, 30.0]])
    assert np.allclose(ras_to_lps(lps_to_ras(p)), p)


def test_kji_ijk_reverse():
    assert tuple(kji_to_ijk(np.array([1, 2, 3]))) == (3, 2, 1)
    assert tuple(ijk_to_kji(kji_to_ijk(np.array([1, 2, 3])))) == (1, 2, 3)


def test_index_to_lps_agrees_with_simpleitk():
    g = oblique_geometry()
    image = sitk.Image(list(g.size), sitk.sitkUInt8)
    g.apply_to_sitk(image)
    for ijk in [(0, 0, 0), (29, 0, 0), (3, 17, 9), (12.5, 4.25, 1.5)]:
        ours = g.ijk_to_lps(np.array(ijk, dtype=float))
        itk = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk])
        assert np.allclose(ours, itk)
        assert np.allclose(g.lps_to_ijk(ours), ijk)
    kji = np.array([4, 7, 11])
    assert np.allclose(g.lps_to_kji(g.kji_to_lps(kji)), kji)


def test_ijk_to_ras_matrix_is_flipped_lps():
    g = oblique_geometry()
    ijk = np.array([5.0, 6.0, 7.0, 1.0])
    assert np.allclose((g.ijk_to_ras_matrix() @ ijk)[:3], lps_to_ras(g.ijk_to_lps(ijk[:3])))


def test_contains_and_nearest():
    g = VolumeGeometry((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert g.contains_lps(np.array([9.4, 0.0, -0.4]))
    assert not g.contains_lps(np.array([9.6, 0.0, 0.0]))
    assert g.nearest_kji(np.array([1.2, 2.6, 3.0])) == (3, 3, 1)
