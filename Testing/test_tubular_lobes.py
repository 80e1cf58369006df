"""The per-lobe Hessian: its point Hessian against scikit-image's, and Li's measures on
ideal shapes."""

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import hessian_matrix

from LungTumorReconLib.tumor.tubular_lobes import dot_and_line, hessian_eigen_at, tubular_lobes


def _skimage_eigenvalues(hu, point, radius_mm, spacing):
    sigma = radius_mm / np.sqrt(3)
    elements = hessian_matrix(hu, tuple(sigma / s for s in spacing), mode="nearest", use_gaussian_derivatives=True)
    hessian = np.zeros((3, 3))
    for (a, b), e in zip([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)], elements):
        hessian[a, b] = hessian[b, a] = e[point] / (spacing[a] * spacing[b]) * sigma**2
    values = np.linalg.eigvalsh(hessian)
    return values[np.argsort(-np.abs(values))]


def test_point_hessian_matches_scikit_image_on_an_anisotropic_grid():
    rng = np.random.default_rng(0)
    hu = ndi.gaussian_filter(rng.normal(0, 1000, (40, 50, 50)), 2).astype(np.float32)
    spacing = (2.0, 0.8, 0.8)
    ours, _ = hessian_eigen_at(hu, (20, 25, 25), 4.0, spacing)
    np.testing.assert_allclose(ours, _skimage_eigenvalues(hu, (20, 25, 25), 4.0, spacing), rtol=0.05, atol=0.5)


def _shape(solid):
    return ndi.gaussian_filter(np.where(solid, 40.0, -850.0), 1.0).astype(np.float32)


def test_a_ball_is_a_dot_and_a_tube_a_line_along_its_axis():
    kk, jj, ii = np.indices((41, 41, 41))
    ball = (kk - 20) ** 2 + (jj - 20) ** 2 + (ii - 20) ** 2 <= 36
    tube = (jj - 20) ** 2 + (ii - 20) ** 2 <= 36
    dot, line = dot_and_line(hessian_eigen_at(_shape(ball), (20, 20, 20), 6.0, (1.0, 1.0, 1.0))[0])
    assert dot > 2 * line
    values, vectors = hessian_eigen_at(_shape(tube), (20, 20, 20), 6.0, (1.0, 1.0, 1.0))
    dot, line = dot_and_line(values)
    assert line > 2 * dot
    assert abs(vectors[0, 2]) > 0.99  # the weak axis runs along k, the tube's


def test_only_the_tube_through_the_neighbourhood_is_tubular():
    kk, jj, ii = np.indices((60, 50, 50))
    nodule = (kk - 30) ** 2 + (jj - 25) ** 2 + (ii - 18) ** 2 <= 81
    vessel = (jj - 25) ** 2 + (ii - 31) ** 2 <= 25
    component = nodule | vessel
    found = tubular_lobes(component, _shape(component), (30, 25, 18), (1.0, 1.0, 1.0))
    assert not (found & nodule).sum() > 0.05 * nodule.sum()
    assert (found & vessel).sum() > 0.5 * vessel.sum()
