"""Registering a follow-up CT to its baseline, on synthetic pairs with known truth.

Small pairs (112 x 112 x 40 at 3 mm) and a light B-spline stage keep the file to seconds;
the default settings on 512 x 512 CTs are the benchmark's.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from LungTumorReconDev.followup_pairs import synthetic_followup_pair, tumor_centroid_lps
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.followup.registration import MIN_LUNG_DICE, RegistrationParameters, register_followup
from LungTumorReconLib.io.ct import CTVolume

SIZE, SPACING = (112, 112, 40), (3.0, 3.0, 3.0)
VOXEL_MM = max(SPACING)
# a 10 mm shift, a 4 degree turn and 8 mm of breathing
MOTION = dict(shift_mm=(8.0, -6.0, 0.0), rotation_deg=4.0, breathing_mm=8.0)
# fewer metric samples and B-spline iterations than the defaults: the same path, 5x faster
LIGHT = RegistrationParameters(samples=5000, bspline_iterations=20)


@pytest.fixture(scope="module")
def pair():
    return synthetic_followup_pair(1, 2.0, size=SIZE, spacing=SPACING, **MOTION)


@pytest.fixture(scope="module")
def registration(pair):
    return register_followup(pair.baseline, pair.followup, pair.lungs("baseline"), pair.lungs("followup"),
                             params=LIGHT)


def _centroids(pair):
    g = pair.baseline.geometry
    return tumor_centroid_lps(pair.baseline_labels["tumor"], g), tumor_centroid_lps(pair.followup_labels["tumor"], g)


@pytest.mark.parametrize("growth", [2.0, 0.5])
def test_the_pair_has_the_asked_growth_and_a_true_mapping(growth, pair):
    if growth != 2.0:
        pair = synthetic_followup_pair(1, growth, size=SIZE, spacing=SPACING, **MOTION)
    assert pair.followup_volume_ml / pair.baseline_volume_ml == pytest.approx(growth, rel=0.10)
    before, after = _centroids(pair)
    assert np.linalg.norm(pair.map_points_lps(before)[0] - after) <= VOXEL_MM
    # the SimpleITK form of the truth agrees with the analytic one
    assert np.allclose(pair.truth_transform.TransformPoint(tuple(before)), pair.map_points_lps(before)[0], atol=0.1)
    assert pair.motion.inverse(pair.map_points_lps(before)) == pytest.approx(before[None], abs=1e-6)
    assert pair.baseline_labels["tumor"][pair.baseline.geometry.nearest_kji(pair.seed_lps)]
    assert pair.days == 90


def test_registration_brings_the_tumour_centre_within_a_voxel(pair, registration):
    before, after = _centroids(pair)
    mapped = registration.map_points_lps(before)
    assert mapped.shape == (1, 3)
    assert np.linalg.norm(mapped[0] - after) <= VOXEL_MM
    assert registration.lung_dice >= 0.9
    assert list(registration.stages) == ["rigid", "affine", "deformable"]
    assert registration.stages["affine"] > registration.stages["rigid"] - 0.01


def test_the_follow_up_resampled_onto_the_baseline_and_the_exported_transform(pair, registration, tmp_path):
    grown = registration.to_baseline(pair.followup_labels["tumor"], pair.followup.geometry, nearest=True)
    assert grown.dtype == bool and grown.shape == pair.baseline.array.shape
    before, _ = _centroids(pair)
    assert np.linalg.norm(tumor_centroid_lps(grown, pair.baseline.geometry) - before) <= VOXEL_MM
    hu = registration.to_baseline(pair.followup.array, pair.followup.geometry)
    assert hu.dtype == pair.followup.array.dtype and hu.min() >= -1024
    path = registration.write_transform(tmp_path / "followup_to_baseline.h5")
    again = sitk.ReadTransform(str(path))
    assert np.allclose(again.TransformPoint(tuple(before)), registration.map_points_lps(before)[0], atol=1e-3)


def _turned(pair):
    """The follow-up turned 90 degrees about the body's long axis: beyond the rigid stage's reach."""
    turn = lambda a: np.ascontiguousarray(np.rot90(a, 1, axes=(1, 2)))  # noqa: E731
    return CTVolume(turn(pair.followup.array), pair.followup.geometry), turn(pair.lungs("followup"))


def _one_lung(pair):
    """A follow-up whose left lung is gone (filled with soft tissue): lungs that do not correspond."""
    hu = pair.followup.array.copy()
    hu[pair.followup_labels["left lung"]] = 40
    return CTVolume(hu, pair.followup.geometry), pair.followup_labels["right lung"]


@pytest.mark.parametrize("follow_up", [_turned, _one_lung], ids=["turned 90 degrees", "one lung"])
def test_a_failed_registration_is_refused(pair, follow_up):
    ct, lungs = follow_up(pair)
    with pytest.raises(InputError, match="registration failed: the lungs overlap only") as error:
        register_followup(pair.baseline, ct, pair.lungs("baseline"), lungs, params=LIGHT)
    dice = float(re.search(r"only ([0-9.]+) Dice", str(error.value)).group(1))
    assert dice < MIN_LUNG_DICE - 0.1  # truly failed, not a borderline overlap


def test_bad_arguments_are_refused(pair):
    lungs = pair.lungs("baseline")
    with pytest.raises(ValueError, match="lungs"):
        register_followup(pair.baseline, pair.followup, lungs[:-1], pair.lungs("followup"))
    with pytest.raises(ValueError, match="empty"):
        register_followup(pair.baseline, pair.followup, lungs, np.zeros_like(lungs))


@pytest.mark.parametrize("grow_mm", [4.0, -3.0])
def test_a_painted_growth_keeps_the_edge_as_soft_as_it_was(grow_mm):
    """The real pairs' painted tumour: its new edge has the old edge's partial-volume profile."""
    from scipy import ndimage as ndi

    from LungTumorReconDev.followup_pairs import _paint_growth, _signed_distance
    from LungTumorReconLib.coordinates import VolumeGeometry

    g = VolumeGeometry((64, 64, 48), (1.0, 1.0, 1.5), (0.0, 0.0, 0.0))
    spacing_kji = np.array(g.spacing[::-1])
    kk, jj, ii = np.indices(g.shape_kji)
    r = np.sqrt(((kk - 24) * 1.5) ** 2 + (jj - 32.0) ** 2 + (ii - 32.0) ** 2)
    rng = np.random.default_rng(3)
    # a 10 mm ball, its edge blurred over about 2 mm, in lung with noise
    hu = -850.0 + 890.0 * ndi.gaussian_filter((r <= 10.0).astype(float), (2.0 / 1.5, 2.0, 2.0))
    hu += rng.normal(0.0, 15.0, hu.shape)
    tumour = r <= 10.0
    grown_hu, grown = _paint_growth(hu, tumour, np.ones_like(tumour), g, grow_mm, rng)
    expected_radius = 10.0 + grow_mm
    assert abs(np.cbrt(grown.sum() * g.voxel_volume_ml * 1000 * 3 / (4 * np.pi)) - expected_radius) < 0.8

    def profile(values, mask):
        s = _signed_distance(mask, spacing_kji)
        return [float(np.median(values[(s >= a) & (s < a + 1.0)])) for a in (-3.0, -2.0, 1.0, 2.0)]

    before, after = profile(hu, tumour), profile(grown_hu, grown)
    assert np.allclose(before, after, atol=60.0), (before, after)  # HU 1-3 mm either side of each surface (a voxel centre is >= 1 mm from it)
    assert before[0] - before[-1] > 300  # a soft edge that a sharp one would fail
