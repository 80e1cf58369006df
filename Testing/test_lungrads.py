"""Lung-RADS v2022 suggestions: every row of the table at each boundary, the mean-diameter
rounding, growth, and the label that says what a suggestion is."""

import numpy as np
import pytest

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.followup.growth import mean_diameter_mm
from LungTumorReconLib.tumor.lungrads import (
    NON_SOLID_MAX_FRACTION,
    SOLID_MIN_FRACTION,
    is_growing,
    lung_rads_category,
    nodule_type,
)
from LungTumorReconLib.tumor.measurements import measure_tumor, solid_component

# (nodule type, mean diameter, solid mean diameter, status, growing, expected category)
TABLE = [
    # solid, baseline: <6 → 2; 6 to <8 → 3; 8 to <15 → 4A; ≥15 → 4B
    ("solid", 5.9, None, "baseline", False, "2"), ("solid", 6.0, None, "baseline", False, "3"),
    ("solid", 7.9, None, "baseline", False, "3"), ("solid", 8.0, None, "baseline", False, "4A"),
    ("solid", 14.9, None, "baseline", False, "4A"), ("solid", 15.0, None, "baseline", False, "4B"),
    # solid, new: <4 → 2; 4 to <6 → 3; 6 to <8 → 4A; ≥8 → 4B
    ("solid", 3.9, None, "new", False, "2"), ("solid", 4.0, None, "new", False, "3"),
    ("solid", 5.9, None, "new", False, "3"), ("solid", 6.0, None, "new", False, "4A"),
    ("solid", 7.9, None, "new", False, "4A"), ("solid", 8.0, None, "new", False, "4B"),
    # solid, growing: <8 → 4A; ≥8 → 4B
    ("solid", 3.0, None, "followup", True, "4A"), ("solid", 7.9, None, "followup", True, "4A"),
    ("solid", 8.0, None, "followup", True, "4B"),
    # part-solid, baseline: total <6 → 2; total ≥6 with solid <6 → 3; solid 6 to <8 → 4A; solid ≥8 → 4B
    ("part-solid", 5.9, 3.0, "baseline", False, "2"), ("part-solid", 6.0, 3.0, "baseline", False, "3"),
    ("part-solid", 12.0, 5.9, "baseline", False, "3"), ("part-solid", 12.0, 6.0, "baseline", False, "4A"),
    ("part-solid", 12.0, 7.9, "baseline", False, "4A"), ("part-solid", 12.0, 8.0, "baseline", False, "4B"),
    # part-solid, new: total <6 → 3; new solid component <4 → 4A, ≥4 → 4B
    ("part-solid", 5.9, 3.0, "new", False, "3"), ("part-solid", 6.0, 3.9, "new", False, "4A"),
    ("part-solid", 6.0, 4.0, "new", False, "4B"),
    # part-solid, growing solid component: <4 → 4A, ≥4 → 4B
    ("part-solid", 10.0, 3.9, "followup", True, "4A"), ("part-solid", 10.0, 4.0, "followup", True, "4B"),
    # non-solid: <30 at baseline, new or growing → 2; ≥30 at baseline or new → 3; ≥30 growing or stable → 2
    ("non-solid", 29.9, None, "baseline", False, "2"), ("non-solid", 30.0, None, "baseline", False, "3"),
    ("non-solid", 29.9, None, "new", False, "2"), ("non-solid", 30.0, None, "new", False, "3"),
    ("non-solid", 29.9, None, "followup", True, "2"), ("non-solid", 30.0, None, "followup", True, "2"),
    ("non-solid", 29.9, None, "followup", False, "2"), ("non-solid", 30.0, None, "followup", False, "2"),
    # stable at follow-up: one step down from the size's baseline category (4A → 3, 3 → 2, 2 → 2, 4B → 4B)
    ("solid", 5.9, None, "followup", False, "2"), ("solid", 6.0, None, "followup", False, "2"),
    ("solid", 7.9, None, "followup", False, "2"), ("solid", 8.0, None, "followup", False, "3"),
    ("solid", 14.9, None, "followup", False, "3"), ("solid", 15.0, None, "followup", False, "4B"),
    ("part-solid", 5.9, 3.0, "followup", False, "2"), ("part-solid", 12.0, 5.9, "followup", False, "2"),
    ("part-solid", 12.0, 6.0, "followup", False, "3"), ("part-solid", 12.0, 8.0, "followup", False, "4B"),
]


@pytest.mark.parametrize("kind, mean, solid, status, growing, expected", TABLE)
def test_every_row_of_the_v2022_table_at_its_boundaries(kind, mean, solid, status, growing, expected):
    suggestion = lung_rads_category(kind, mean, solid, status=status, growing=growing)
    assert suggestion.category == expected, suggestion.rule
    assert "not for clinical use" in suggestion.label and expected in suggestion.label
    assert kind in suggestion.rule


def test_every_label_says_it_is_not_for_clinical_use():
    for kind in ("solid", "part-solid", "non-solid"):
        for status, growing in (("baseline", False), ("new", False), ("followup", True), ("followup", False)):
            for size in np.arange(0.0, 40.0, 0.5):
                s = lung_rads_category(kind, float(size), float(size) / 2, status=status, growing=growing)
                assert "suggestion, not for clinical use" in s.label


def test_sizes_are_compared_as_rounded_mean_diameters():
    assert mean_diameter_mm(7.04, 4.95) == 6.0  # 5.995: half up, though the binary float is 5.99499...
    assert mean_diameter_mm(7.0, 4.9) == 6.0 and mean_diameter_mm(7.0, 4.8) == 5.9
    assert mean_diameter_mm(0.2, 0.3) == 0.3 and round(0.25, 1) == 0.2  # half up, not to even
    assert lung_rads_category("solid", 5.95).category == "3"  # 5.95 is 6.0 mm
    assert lung_rads_category("solid", 5.949).category == "2"
    assert lung_rads_category("solid", mean_diameter_mm(7.04, 4.95)).category == "3"


def test_nodule_type_thresholds():
    assert nodule_type(1.0) == "solid" and nodule_type(SOLID_MIN_FRACTION) == "solid"
    assert nodule_type(SOLID_MIN_FRACTION - 1e-9) == "part-solid"
    assert nodule_type(NON_SOLID_MAX_FRACTION) == "part-solid"
    assert nodule_type(NON_SOLID_MAX_FRACTION - 1e-9) == "non-solid" and nodule_type(0.0) == "non-solid"
    with pytest.raises(ValueError):
        nodule_type(1.2)


def test_growth_is_more_than_one_and_a_half_millimetres():
    assert not is_growing(6.0, 7.5) and is_growing(6.0, 7.6)
    assert not is_growing(6.1, 7.6)  # exactly 1.5 in tenths of a millimetre, whatever 7.6 − 6.1 is in binary
    assert is_growing(6.0, 7.55)  # 7.55 is 7.6 mm
    assert is_growing(6.0, 8.0, days=730)  # longer than 12 months: applied anyway
    assert not is_growing(8.0, 6.0, days=90)
    with pytest.raises(ValueError):
        is_growing(6.0, 8.0, days=0)


@pytest.mark.parametrize("kwargs", [
    {"nodule_type": "cavity", "mean_diameter_mm": 5.0},
    {"nodule_type": "solid", "mean_diameter_mm": 5.0, "status": "later"},
    {"nodule_type": "solid", "mean_diameter_mm": 5.0, "growing": True},  # growth needs a follow-up
    {"nodule_type": "part-solid", "mean_diameter_mm": 8.0},  # no solid size
    {"nodule_type": "solid", "mean_diameter_mm": -1.0},
])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        lung_rads_category(**kwargs)


def _ball(shape, spacing, radius, centre=None):
    centre = (np.array(shape) - 1) / 2 if centre is None else np.asarray(centre)
    grids = np.indices(shape).astype(float)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)) <= radius**2


@pytest.mark.parametrize("ggo_hu, solid_radius, expected", [
    (None, 5.0, "solid"), (-650.0, 0.0, "non-solid"), (-600.0, 4.0, "part-solid")])
def test_measured_nodule_type_and_solid_size(ggo_hu, solid_radius, expected):
    """A blurred, noisy nodule 20 mm across: solid, pure ground glass, or with an 8 mm solid core."""
    from scipy import ndimage as ndi

    spacing = (1.25, 0.7, 0.7)
    shape = (40, 64, 64)
    g = VolumeGeometry(shape[::-1], spacing[::-1], (0.0, 0.0, 0.0))
    radius = 10.0 if ggo_hu is not None else solid_radius
    hu = np.full(shape, -850.0)
    if ggo_hu is not None:
        hu[_ball(shape, spacing, radius)] = ggo_hu
    if solid_radius:
        hu[_ball(shape, spacing, solid_radius)] = 40.0
    hu = ndi.gaussian_filter(hu, [0.6 / s for s in spacing]) + np.random.default_rng(0).normal(0, 25, shape)
    top = 40.0 if ggo_hu is None else ggo_hu
    mask = (hu > (-850.0 + top) / 2) & _ball(shape, spacing, radius + 3)  # the half-maximum edge
    mask = ndi.binary_opening(mask)
    m = measure_tumor(mask, hu, g, None)
    assert m.nodule_type == expected
    assert m.mean_diameter_mm == pytest.approx(2 * radius, abs=1.5)
    assert "not for clinical use" in m.lung_rads["label"]
    if expected == "solid":
        assert m.solid_fraction == 1.0 and m.solid_mean_diameter_mm == m.mean_diameter_mm
        assert m.lung_rads["category"] == "4A"  # 10 mm at baseline
    elif expected == "non-solid":
        assert m.solid_fraction < NON_SOLID_MAX_FRACTION and m.lung_rads["category"] == "2"
    else:
        assert m.solid_mean_diameter_mm == pytest.approx(8.0, abs=1.0)
        assert m.lung_rads["category"] in ("4A", "4B")  # solid component at the 8 mm step
        solid, fraction = solid_component(mask, hu, g)
        assert fraction == pytest.approx(m.solid_fraction) and not (solid & ~mask).any()
