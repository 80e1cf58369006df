"""Follow-up arithmetic: percent change, volume doubling time and its interval from the
partial-volume rim, and RECIST 1.1 at each of its boundaries."""

import math

import numpy as np
import pytest

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.followup.growth import (
    boundary_volumes,
    mean_diameter_mm,
    no_measurable_growth,
    partial_volume_bounds,
    percent_change,
    vdt_interval,
    volume_doubling_time_days,
)
from LungTumorReconLib.followup.recist import RecistResult, choose_targets, recist_response


def test_mean_diameter_and_percent_change():
    assert mean_diameter_mm(7.04, 4.95) == 6.0 and mean_diameter_mm(10.0, 8.0) == 9.0
    assert percent_change(50.0, 35.0) == pytest.approx(-30.0) and percent_change(20.0, 25.0) == pytest.approx(25.0)
    assert percent_change(0.0, 5.0) is None


def test_volume_doubling_time():
    assert volume_doubling_time_days(1.0, 2.0, 90) == pytest.approx(90.0)
    assert volume_doubling_time_days(1.0, 8.0, 90) == pytest.approx(30.0)  # three doublings
    assert volume_doubling_time_days(2.0, 1.0, 90) == pytest.approx(-90.0)  # halving: negative
    assert volume_doubling_time_days(1.5, 1.5, 90) == math.inf
    for bad in ((1.0, 2.0, None), (1.0, 2.0, 0), (1.0, 2.0, -5), (0.0, 2.0, 90), (1.0, -1.0, 90)):
        assert volume_doubling_time_days(*bad) is None


def test_vdt_interval_when_every_combination_grows_or_shrinks():
    low, high = vdt_interval(0.9, 1.1, 1.9, 2.1, 100)
    corners = [volume_doubling_time_days(a, b, 100) for a in (0.9, 1.1) for b in (1.9, 2.1)]
    assert (low, high) == pytest.approx((min(corners), max(corners)))
    assert 0 < low < volume_doubling_time_days(1.0, 2.0, 100) < high < math.inf
    assert not no_measurable_growth((low, high))
    low, high = vdt_interval(1.9, 2.1, 0.9, 1.1, 100)  # shrinking throughout: negative, finite
    corners = [volume_doubling_time_days(a, b, 100) for a in (1.9, 2.1) for b in (0.9, 1.1)]
    assert (low, high) == pytest.approx((min(corners), max(corners))) and high < 0
    assert no_measurable_growth((low, high))


def test_vdt_interval_including_infinity_means_no_measurable_growth():
    low, high = vdt_interval(0.9, 1.1, 1.0, 1.2, 100)  # 1.0/1.1 < 1 < 1.2/0.9
    assert high == math.inf and low == pytest.approx(volume_doubling_time_days(0.9, 1.2, 100))
    assert no_measurable_growth((low, high))
    assert vdt_interval(1.0, 1.0, 1.0, 1.0, 100) == (math.inf, math.inf)
    assert vdt_interval(1.0, 1.2, 1.0, 1.0, 100) == (math.inf, math.inf)  # V2 ≤ V1 in every combination
    assert vdt_interval(0.0, 1.0, 3.0, 4.0, 100) == (0.0, pytest.approx(100 * math.log(2) / math.log(3)))
    assert vdt_interval(0.0, 1.0, 0.0, 4.0, 100) == (0.0, math.inf)  # all rim: any growth, or none
    for bad in ((1.0, 1.1, 2.0, 2.1, 0), (-0.1, 1.1, 2.0, 2.1, 10), (1.2, 1.1, 2.0, 2.1, 10), (0.0, 0.0, 1.0, 2.0, 10)):
        with pytest.raises(ValueError):
            vdt_interval(*bad)


def test_boundary_volumes_of_a_cube():
    g = VolumeGeometry((20, 20, 20), (0.5, 0.5, 2.0), (0.0, 0.0, 0.0))
    mask = np.zeros(g.shape_kji, bool)
    mask[5:9, 5:11, 5:11] = True  # 4 x 6 x 6 voxels
    inner, outer = boundary_volumes(mask, g)
    voxel = g.voxel_volume_ml
    assert inner == pytest.approx(2 * 4 * 4 * voxel)  # the boundary voxels taken off
    assert outer == pytest.approx((4 * 6 * 6 + 2 * 36 + 4 * 4 * 6) * voxel)  # a face-connected rim added
    assert inner < mask.sum() * voxel < outer
    edge = np.zeros(g.shape_kji, bool)
    edge[0:3, 0:3, 0:3] = True  # at the volume's corner: the rim counts beyond the edge too
    assert boundary_volumes(edge, g) == pytest.approx((voxel, (27 + 6 * 9) * voxel))
    assert boundary_volumes(np.zeros(g.shape_kji, bool), g) == (0.0, 0.0)
    low, high = partial_volume_bounds(mask, g)  # half of each rim: centred on the measured edge
    assert low == pytest.approx((inner + mask.sum() * voxel) / 2) and high == pytest.approx((outer + mask.sum() * voxel) / 2)


def test_rim_interval_of_a_small_nodule_on_thick_slices_includes_infinity():
    """Nietert et al.: a small nodule's volume is too uncertain on thick slices to show modest growth."""
    def ball(radius, spacing):
        g = VolumeGeometry((60, 60, 60), spacing, (0.0, 0.0, 0.0))
        centre = (np.array(g.shape_kji) - 1) / 2
        grids = np.indices(g.shape_kji).astype(float)
        d = sum(((x - c) * s) ** 2 for x, c, s in zip(grids, centre, spacing[::-1]))
        return d <= radius**2, g

    for spacing, includes_infinity in (((0.7, 0.7, 5.0), True), ((0.5, 0.5, 0.5), False)):
        (m1, g), (m2, _) = ball(3.0, spacing), ball(4.0, spacing)  # 6 → 8 mm: 2.4 times the volume
        interval = vdt_interval(*partial_volume_bounds(m1, g), *partial_volume_bounds(m2, g), days=90)
        assert no_measurable_growth(interval) == includes_infinity, interval


def test_choose_targets():
    assert choose_targets([12.0, 9.9, 31.0, 10.0, 15.5]) == [2, 4]  # the two largest measurable
    assert choose_targets([10.0, 9.99]) == [0]  # 10 mm is measurable, 9.99 is not
    assert choose_targets([11.0, 11.0, 11.0]) == [0, 1]  # ties in the given order
    assert choose_targets([]) == [] and choose_targets([5.0]) == []


@pytest.mark.parametrize("baseline, followup, nadir, expected", [
    (100.0, 70.0, None, "PR"),  # exactly 30 % decrease
    (100.0, 70.1, None, "SD"),  # 29.9 %
    (33.3, 23.31, None, "PR"),  # 30 % of a sum in tenths, not lost to binary floats
    (25.0, 30.0, None, "PD"),  # +20 % and +5 mm over the baseline (the nadir)
    (24.5, 29.4, None, "SD"),  # +20 % but +4.9 mm
    (100.0, 119.9, None, "SD"),  # +19.9 %
    (100.0, 120.0, None, "PD"),
    (100.0, 72.0, 60.0, "PD"),  # +20 % and +12 mm over the nadir, though still 28 % under the baseline
    (100.0, 71.9, 60.0, "SD"),  # +19.8 % over the nadir
    (100.0, 60.0, 120.0, "PR"),  # a nadir above the baseline: the baseline is the nadir
])
def test_recist_sums_at_the_boundaries(baseline, followup, nadir, expected):
    result = recist_response(baseline, followup, nadir_sum_mm=nadir)
    assert isinstance(result, RecistResult) and result.response == expected, result.rule
    assert result.baseline_sum_mm == baseline and result.followup_sum_mm == followup


def test_recist_lesion_rules():
    assert recist_response(50.0, 20.0, new_lesions=True).response == "PD"  # a new lesion beats a PR
    assert recist_response(50.0, 0.0, new_lesions=True, targets_all_gone=True).rule == "new lesion"
    cr = recist_response(50.0, 0.0, targets_all_gone=True)
    assert cr.response == "CR" and cr.change_percent == -100.0
    assert recist_response(50.0, 50.0, non_target_progression=True).response == "PD"
    assert recist_response(50.0, 6.0, nadir_sum_mm=0.0).response == "PD"  # reappearance after a CR, ≥ 5 mm
    assert recist_response(50.0, 4.0, nadir_sum_mm=0.0).response == "PR"
    sd = recist_response(50.0, 50.0)
    assert sd.response == "SD" and sd.change_percent == 0.0
    with pytest.raises(AttributeError):
        sd.response = "PR"  # frozen
    for bad in ((0.0, 10.0), (50.0, -1.0)):
        with pytest.raises(ValueError):
            recist_response(*bad)
