"""A Lung-RADS v2022 (ACR) category *suggested* for one parenchymal lung nodule.

Not for clinical use: a suggestion from automatic measurements, for a reader to check.

Sizes are mean diameters ((long + short axis) / 2, rounded half up to 0.1 mm) of the whole
nodule, and for part-solid nodules of its solid component too. The v2022 table, as coded:

========== ======== ==================================================================
type       status   category
========== ======== ==================================================================
solid      baseline <6 → 2; 6 to <8 → 3; 8 to <15 → 4A; ≥15 → 4B
solid      new      <4 → 2; 4 to <6 → 3; 6 to <8 → 4A; ≥8 → 4B
solid      growing  <8 → 4A; ≥8 → 4B
part-solid baseline total <6 → 2; total ≥6 with solid <6 → 3; solid 6 to <8 → 4A; solid ≥8 → 4B
part-solid new      total <6 → 3; else solid component <4 → 4A, ≥4 → 4B
part-solid growing  (growing solid component) solid <4 → 4A; ≥4 → 4B
non-solid  baseline <30 → 2; ≥30 → 3
non-solid  new      <30 → 2; ≥30 → 3
non-solid  growing  → 2 (v2022: <30 mm growing, or ≥30 mm "slowly growing"; the rate is not judged)
========== ======== ==================================================================

A follow-up of a nodule neither new nor growing is stable: v2022's stepped management takes
its category one step down from the baseline category of its size (4A stable at the 3-month
follow-up → 3, 3 stable at the 6-month follow-up → 2; 2 stays 2, 4B stays 4B, managed by
clinical evaluation). The prior category is not known here; the baseline category of the
current size stands for it, which a stable size (≤ 1.5 mm change) seldom changes.

Not evaluated: the juxtapleural/perifissural rule (< 10 mm → 2), calcification and fat
(benign features, category 1), airway nodules, atypical cysts and category 4X features.
Every nodule is treated as a parenchymal nodule without benign features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from LungTumorReconLib.followup.growth import round_tenth

# the solid component's share of the nodule's volume (tumor.measurements.solid_component):
# solid from 80 %: ground glass thinner than 4 % of the diameter on each side (0.8^(1/3) = 0.93)
# is the partial-volume rim, not a ground-glass component
SOLID_MIN_FRACTION = 0.8
# non-solid under 3 %: a 2 mm vessel through a 20 mm ground-glass nodule (1.5 % of its volume)
# does not make it part-solid, a solid core a third of its diameter across (3.7 %) does
NON_SOLID_MAX_FRACTION = 0.03
GROWTH_MIN_MM = 1.5  # v2022: growth is a mean-diameter increase of more than 1.5 mm within 12 months
NOT_FOR_CLINICAL_USE = "suggestion, not for clinical use"
NODULE_TYPES = ("solid", "part-solid", "non-solid")
STATUSES = ("baseline", "new", "followup")
_STEP_DOWN = {"4B": "4B", "4A": "3", "3": "2", "2": "2"}


@dataclass(frozen=True)
class LungRadsSuggestion:
    """A suggested category, the table row that gave it, and a label saying what it is."""

    category: str  # "2", "3", "4A" or "4B"
    rule: str
    label: str  # always says "suggestion, not for clinical use"

    def as_dict(self) -> dict:
        return asdict(self)


def nodule_type(solid_fraction: float) -> str:
    """"solid", "part-solid" or "non-solid" from the solid component's share of the volume.

    Solid when the fraction is ≥ ``SOLID_MIN_FRACTION`` (0.8), non-solid when it is below
    ``NON_SOLID_MAX_FRACTION`` (0.03), part-solid between (the constants say why).

    Parameters
    ----------
    solid_fraction : float
        The solid component's volume over the nodule's, 0..1.

    Returns
    -------
    str
        The nodule type.

    Raises
    ------
    ValueError
        If ``solid_fraction`` is outside 0..1.

    Examples
    --------
    >>> nodule_type(1.0), nodule_type(0.8), nodule_type(0.3), nodule_type(0.0)
    ('solid', 'solid', 'part-solid', 'non-solid')
    """
    if not 0.0 <= solid_fraction <= 1.0:
        raise ValueError(f"solid_fraction must lie in 0..1, got {solid_fraction}")
    if solid_fraction >= SOLID_MIN_FRACTION:
        return "solid"
    return "part-solid" if solid_fraction >= NON_SOLID_MAX_FRACTION else "non-solid"


def is_growing(mean_before_mm: float, mean_after_mm: float, days: float | None = None) -> bool:
    """Lung-RADS v2022 growth: the mean diameter increased by more than 1.5 mm.

    v2022 defines growth within 12 months. Over a longer interval the same rule is applied
    here (slow growth over several examinations then counts as growing; v2022 leaves it to the
    reader); ``days`` is checked, not used.

    Parameters
    ----------
    mean_before_mm, mean_after_mm : float
        The mean diameters of the earlier and the later examination (rounded to 0.1 mm here).
    days : float, optional
        The days between them, > 0 when given.

    Returns
    -------
    bool
        Whether the nodule grows.

    Raises
    ------
    ValueError
        If ``days`` is given and not positive.

    Examples
    --------
    >>> is_growing(6.0, 7.5), is_growing(6.0, 7.6), is_growing(6.1, 7.6, days=400)
    (False, True, False)
    """
    if days is not None and not days > 0:
        raise ValueError(f"days must be positive, got {days}")
    increase = Decimal(repr(round_tenth(mean_after_mm))) - Decimal(repr(round_tenth(mean_before_mm)))
    return increase > Decimal(repr(GROWTH_MIN_MM))  # in decimals: 7.6 − 6.1 is exactly 1.5


def _by_size(size: float, steps: tuple[tuple[float, str], ...], last: str) -> tuple[str, str]:
    """The category of the first step whose bound ``size`` is below, and the range as text."""
    low = None
    for bound, category in steps:
        if size < bound:
            return category, (f"<{bound:g}" if low is None else f"{low:g} to <{bound:g}")
        low = bound
    return last, f"≥{low:g}"


def _suggestion(category: str, rule: str) -> LungRadsSuggestion:
    return LungRadsSuggestion(category, rule, f"Lung-RADS v2022 {category}: {NOT_FOR_CLINICAL_USE}")


def _baseline(kind: str, total: float, solid: float) -> tuple[str, str]:
    if kind == "solid":
        category, rng = _by_size(total, ((6.0, "2"), (8.0, "3"), (15.0, "4A")), "4B")
        return category, f"mean diameter {rng} mm"
    if kind == "non-solid":
        category, rng = _by_size(total, ((30.0, "2"),), "3")
        return category, f"mean diameter {rng} mm"
    if total < 6.0:
        return "2", "total mean diameter <6 mm"
    category, rng = _by_size(solid, ((6.0, "3"), (8.0, "4A")), "4B")
    return category, f"total ≥6 mm, solid component {rng} mm"


def _new_or_growing(kind: str, total: float, solid: float, status: str) -> tuple[str, str]:
    if kind == "solid" and status == "new":
        category, rng = _by_size(total, ((4.0, "2"), (6.0, "3"), (8.0, "4A")), "4B")
        return category, f"mean diameter {rng} mm"
    if kind == "solid":
        category, rng = _by_size(total, ((8.0, "4A"),), "4B")
        return category, f"mean diameter {rng} mm"
    if kind == "non-solid":
        category, rng = _by_size(total, ((30.0, "2"),), "3" if status == "new" else "2")
        slow = status == "followup" and total >= 30.0
        slowly = " (v2022: stable or slowly growing; the rate is not judged)" if slow else ""
        return category, f"mean diameter {rng} mm{slowly}"
    if status == "new" and total < 6.0:
        return "3", "total mean diameter <6 mm"
    category, rng = _by_size(solid, ((4.0, "4A"),), "4B")
    return category, f"{'new' if status == 'new' else 'growing'} solid component {rng} mm"


def lung_rads_category(nodule_type: str, mean_diameter_mm: float, solid_mean_diameter_mm: float | None = None,
                       status: str = "baseline", growing: bool = False) -> LungRadsSuggestion:
    """The Lung-RADS v2022 category suggested for one parenchymal nodule (module docstring).

    Not for clinical use: every label says "suggestion, not for clinical use".

    Parameters
    ----------
    nodule_type : str
        "solid", "part-solid" or "non-solid" (:func:`nodule_type`).
    mean_diameter_mm : float
        The whole nodule's mean diameter, mm (rounded half up to 0.1 mm here).
    solid_mean_diameter_mm : float, optional
        The solid component's mean diameter, mm; needed for a part-solid nodule.
    status : str, optional
        "baseline" (first screening), "new" (absent before) or "followup" (seen before).
    growing : bool, optional
        At a follow-up: the nodule (for a part-solid nodule its solid component) grows
        (:func:`is_growing`). A follow-up nodule that does not grow is stable.

    Returns
    -------
    LungRadsSuggestion
        The category ("2", "3", "4A" or "4B"), the rule that gave it, and the label.

    Raises
    ------
    ValueError
        If the type or the status is unknown, a size is negative, a part-solid nodule has no
        solid size, or ``growing`` is set at a baseline or for a new nodule.

    Examples
    --------
    >>> lung_rads_category("solid", 7.95).category  # 7.95 mm is 8.0 mm
    '4A'
    >>> s = lung_rads_category("part-solid", 12.0, 6.0)
    >>> s.category, s.rule
    ('4A', 'part-solid, baseline: total ≥6 mm, solid component 6 to <8 mm')
    >>> s.label
    'Lung-RADS v2022 4A: suggestion, not for clinical use'
    >>> s = lung_rads_category("solid", 9.0, status="followup")
    >>> s.category
    '3'
    >>> s.rule
    'solid, follow-up, stable: baseline 4A (mean diameter 8 to <15 mm) one step down (stable at 3-month follow-up)'
    """
    if nodule_type not in NODULE_TYPES or status not in STATUSES:
        raise ValueError(f"nodule_type must be one of {NODULE_TYPES} and status one of {STATUSES}, "
                         f"got {nodule_type!r}, {status!r}")
    if growing and status != "followup":
        raise ValueError("growing needs status 'followup': a baseline or new nodule has no earlier size")
    if nodule_type == "part-solid" and solid_mean_diameter_mm is None:
        raise ValueError("a part-solid nodule needs solid_mean_diameter_mm")
    total = round_tenth(mean_diameter_mm)
    solid = round_tenth(solid_mean_diameter_mm or 0.0)
    if total < 0 or solid < 0:
        raise ValueError("sizes must not be negative")
    if status == "baseline":
        category, why = _baseline(nodule_type, total, solid)
        return _suggestion(category, f"{nodule_type}, baseline: {why}")
    if status == "new" or growing:
        category, why = _new_or_growing(nodule_type, total, solid, status)
        return _suggestion(category, f"{nodule_type}, {'new' if status == 'new' else 'growing'}: {why}")
    prior, why = _baseline(nodule_type, total, solid)
    category = _STEP_DOWN[prior]
    note = {"4B": " (4B stays 4B: clinical evaluation)", "4A": " one step down (stable at 3-month follow-up)",
            "3": " one step down (stable at 6-month follow-up)", "2": " (2 stays 2)"}[prior]
    return _suggestion(category, f"{nodule_type}, follow-up, stable: baseline {prior} ({why}){note}")
