"""The Viterbi snake: the recursion finds the true minimum, and the snake finds real edges."""

import itertools

import numpy as np
import pytest

from LungTumorReconLib.lungs.snake import fill_polygon
from LungTumorReconLib.lungs.snake_viterbi import (
    SnakeParameters,
    _viterbi_pass,
    resample_closed,
    signed_area,
    slice_energy,
    viterbi_snake,
)


def _closed_energy(cand_mm, ext, alpha, beta, choice):
    v = cand_mm[np.arange(len(choice)), choice]
    d1 = ((v - np.roll(v, 1, axis=0)) ** 2).sum()
    d2 = ((np.roll(v, -1, axis=0) - 2 * v + np.roll(v, 1, axis=0)) ** 2).sum()
    return alpha * d1 + beta * d2 + ext[np.arange(len(choice)), choice].sum()


def test_viterbi_pass_is_the_exact_minimum_of_the_closed_contour_energy():
    rng = np.random.default_rng(3)
    n, m, fixed = 7, 3, 1
    base = np.column_stack([np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
                            np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))]) * 10
    cand = base[:, None, :] + rng.normal(size=(n, m, 2))
    ext = rng.normal(size=(n, m))
    for alpha, beta in [(0.5, 0.0), (0.1, 0.7), (0.0, 1.0)]:
        choice = _viterbi_pass(cand, ext, alpha, beta, fixed)
        best = min(
            _closed_energy(cand, ext, alpha, beta, np.array((fixed, fixed) + rest))
            for rest in itertools.product(range(m), repeat=n - 2)
        )
        assert choice[0] == choice[1] == fixed
        assert _closed_energy(cand, ext, alpha, beta, choice) == pytest.approx(best)


def _disc_image(radius_px: float, size: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius_px**2
    return np.where(inside, -850.0, 40.0)


@pytest.mark.parametrize("start_radius", [22.0, 34.0])
def test_snake_moves_onto_the_edge_of_an_air_disc(start_radius):
    hu = _disc_image(28.0)
    energy = slice_energy(hu, (0.8, 0.8), SnakeParameters())
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    start = np.column_stack([48 + start_radius * np.sin(t), 48 + start_radius * np.cos(t)])
    out = viterbi_snake(start, energy, SnakeParameters(search_radii_mm=(6.0, 4.0, 2.0, 1.0, 0.5)))
    radii = np.hypot(out[:, 0] - 48, out[:, 1] - 48)
    assert np.abs(radii - 28.0).max() < 1.0  # within a pixel of the true edge, all round
    assert signed_area(out) > 0  # counter-clockwise, normals outward


def test_resample_closed_spaces_points_evenly():
    square = np.array([[0, 0], [0, 10], [10, 10], [10, 0]], dtype=float)
    pts = resample_closed(square, 8)
    steps = np.hypot(*np.diff(np.vstack([pts, pts[:1]]), axis=0).T)
    assert np.allclose(steps, 5.0)


def test_fill_polygon_matches_scikit_image():
    from skimage.draw import polygon

    rng = np.random.default_rng(1)
    for _ in range(5):
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        r = 20 + 8 * rng.random(60)
        pts = np.column_stack([32 + r * np.sin(t) + rng.random(), 30 + r * np.cos(t)])
        ref = np.zeros((64, 64), bool)
        rr, cc = polygon(pts[:, 0], pts[:, 1], ref.shape)
        ref[rr, cc] = True
        assert np.array_equal(fill_polygon(pts, ref.shape), ref)
