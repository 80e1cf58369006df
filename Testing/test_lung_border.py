"""Bridging pleural indentations (lung_border): a mass against the chest wall is put back into
its lung by the threshold and the snake alike, and nothing medial, at a cropped edge or off
the lung is taken in. The bench (make bench, bench_lungs.pleural) scores more cases."""

from __future__ import annotations

import numpy as np
import pytest

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.evaluation import dice
from LungTumorReconLib.lungs.air import LungAirParameters
from LungTumorReconLib.lungs.border import PleuralBridgeParameters, bridge_pleural_indentations
from LungTumorReconLib.lungs.snake import SnakeLungParameters, segment_lungs_snake
from LungTumorReconLib.lungs.threshold import segment_lungs_threshold
from LungTumorReconDev.synthetic_thorax import make_thorax

LUNGS = ("right lung", "left lung")


def _union(masks: dict) -> np.ndarray:
    return np.logical_or.reduce(list(masks.values()))


@pytest.fixture(scope="module")
def mass_case():
    """A 48 mm mass against the lateral chest wall (generator seed 97, not tuned on)."""
    return make_thorax(size=(256, 256, 80), spacing=(1.4, 1.4, 4.0), tumors=("pleural-mass",), seed=97)


@pytest.mark.parametrize("method", ["threshold", "snake"])
def test_a_mass_against_the_wall_is_inside_its_lung(mass_case, method):
    c = mass_case
    tumour, truth = c.labels["tumor"], _union({n: c.labels[n] for n in LUNGS})
    assert 30 < c.tumors[0]["radius_mm"] * 2 < 60 and (tumour & truth).sum() == tumour.sum()
    off = LungAirParameters(bridge_pleura=False)
    if method == "threshold":
        before, after = segment_lungs_threshold(c.ct, c.geometry, off), segment_lungs_threshold(c.ct, c.geometry)
    else:
        before = segment_lungs_snake(c.ct, c.geometry, params=SnakeLungParameters(air=off))
        after = segment_lungs_snake(c.ct, c.geometry)
    inside = lambda lungs: (_union(lungs) & tumour).sum() / tumour.sum()  # noqa: E731
    assert inside(before) < 0.1  # air-based lungs leave the mass out
    assert inside(after) >= 0.95
    side = c.tumors[0]["side"]
    assert (after[side] & tumour).sum() >= 0.95 * tumour.sum()  # in its own lung
    added = _union(after) & ~_union(before)
    assert (added & ~truth).sum() * c.geometry.voxel_volume_ml < 1.5  # mL beyond the true lungs
    for name in LUNGS:
        assert after[name].sum() >= before[name].sum() and (after[name] | before[name]).sum() == after[name].sum()
        assert dice(after[name], c.labels[name]) >= dice(before[name], c.labels[name])
    assert not (after["right lung"] & after["left lung"]).any()


def test_nothing_is_taken_in_at_a_cropped_edge_or_on_the_medial_side():
    """A chest whose field of view cuts the body at both sides, lungs touching: nothing is
    bridged along the cut (the closing once ran along it: 155 mL of chest wall), nor in the
    mediastinum, the hilum or the heart's bed."""
    c = make_thorax(size=(256, 256, 120), spacing=(1.3, 1.3, 2.5), tumors=("spiculated",), seed=2, lungs_touch=True)
    before = segment_lungs_threshold(c.ct, c.geometry, LungAirParameters(bridge_pleura=False))
    after = bridge_pleural_indentations(before, c.ct, c.geometry)
    added = _union(after) & ~_union(before)
    assert added.sum() * c.geometry.voxel_volume_ml < 1.0


def test_a_bite_is_bridged_and_a_medial_recess_is_not():
    """A box 'lung' with a hemispherical bite in its lateral wall and a notch of the same size
    in its medial wall, both filled with soft tissue: only the lateral bite is bridged."""
    g = VolumeGeometry((80, 80, 40), (2.0, 2.0, 2.5), (-160.0, -80.0, -50.0))  # x from -160 to -2: a right lung
    k, j, i = np.indices(g.shape_kji)
    hu = np.full(g.shape_kji, 40, dtype=np.int16)  # soft tissue everywhere
    lung = (i >= 10) & (i < 70) & (j >= 10) & (j < 70) & (k >= 4) & (k < 36)
    centre_k, centre_j = 20, 40
    lateral_bite = ((k - centre_k) * 2.5) ** 2 + ((j - centre_j) * 2.0) ** 2 + ((i - 10) * 2.0) ** 2 <= 15.0**2
    medial_notch = ((k - centre_k) * 2.5) ** 2 + ((j - centre_j) * 2.0) ** 2 + ((i - 69) * 2.0) ** 2 <= 15.0**2
    hu[lung & ~lateral_bite & ~medial_notch] = -850
    air_lung = lung & ~lateral_bite & ~medial_notch
    out = bridge_pleural_indentations({"right lung": air_lung}, hu, g)["right lung"]
    bite = lateral_bite & lung
    notch = medial_notch & lung
    assert (out & bite).sum() >= 0.9 * bite.sum()
    assert (out & notch).sum() <= 0.05 * notch.sum()
    assert not (out & ~lung).any() or (out & ~lung).sum() <= 0.05 * bite.sum()


def test_parameters_are_checked():
    g = VolumeGeometry((8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    hu = np.zeros((8, 8, 8), np.int16)
    with pytest.raises(ValueError, match="positive"):
        bridge_pleural_indentations({"right lung": hu > 0}, hu, g, PleuralBridgeParameters(ball_radius_mm=0))
