"""RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-47) for lung tumours.

Target lesions are chosen at baseline from the measurable ones: longest diameter ≥ 10 mm,
which assumes CT with slices of 5 mm or less (on thicker slices RECIST asks for twice the
slice thickness; lymph nodes, measured by their short axis, are not handled). At most two
per organ and five in all: the lungs count as one organ, so at most two lung targets. The
response compares the sum of the targets' longest diameters:

* PD: the sum is ≥ 20 % above the nadir (the smallest sum so far, the baseline included)
  *and* ≥ 5 mm above it, or a new lesion, or unequivocal progression of non-targets;
* CR: every target gone (and no new lesion);
* PR: the sum is ≥ 30 % below the baseline sum;
* SD: otherwise.

Percentages are compared after rounding to 10⁻⁶ %, so that sums given to 0.1 mm meet the
thresholds exactly (70.0 of 100.0 is a 30 % decrease, whatever the binary floats say).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MEASURABLE_MIN_MM = 10.0  # RECIST 1.1, CT with slices ≤ 5 mm
MAX_TARGETS_PER_ORGAN = 2  # the lungs are one organ
MAX_TARGETS = 5
PD_MIN_INCREASE_PERCENT = 20.0  # over the nadir
PD_MIN_INCREASE_MM = 5.0  # absolute, over the nadir
PR_MIN_DECREASE_PERCENT = 30.0  # under the baseline
_DIGITS = 6  # percentages rounded to this many decimals before they meet a threshold


@dataclass(frozen=True)
class RecistResult:
    """A RECIST 1.1 response, the rule that decided it and the sums it compared."""

    response: str  # "CR", "PR", "SD" or "PD"
    rule: str
    baseline_sum_mm: float
    followup_sum_mm: float
    change_percent: float | None  # from the baseline sum


def choose_targets(baseline_longest_mm: list[float]) -> list[int]:
    """Indices of the RECIST 1.1 target lesions among lung lesions, largest first.

    Parameters
    ----------
    baseline_longest_mm : list of float
        Each lesion's longest diameter at baseline, in mm.

    Returns
    -------
    list of int
        The two largest measurable lesions (longest diameter ≥ 10 mm), largest first (ties in
        the given order); every other lesion is a non-target.

    Examples
    --------
    >>> choose_targets([12.0, 9.9, 31.0, 10.0, 15.5])
    [2, 4]
    >>> choose_targets([8.0, 6.0])
    []
    """
    measurable = [i for i, d in enumerate(baseline_longest_mm) if d >= MEASURABLE_MIN_MM]
    measurable.sort(key=lambda i: -baseline_longest_mm[i])  # stable: ties keep their order
    return measurable[:min(MAX_TARGETS_PER_ORGAN, MAX_TARGETS)]


def recist_response(baseline_sum_mm: float, followup_sum_mm: float, nadir_sum_mm: float | None = None,
                    new_lesions: bool = False, targets_all_gone: bool = False,
                    non_target_progression: bool = False) -> RecistResult:
    """The RECIST 1.1 overall response of a follow-up (module docstring).

    Parameters
    ----------
    baseline_sum_mm : float
        The sum of the targets' longest diameters at baseline, > 0.
    followup_sum_mm : float
        The same sum now, ≥ 0.
    nadir_sum_mm : float, optional
        The smallest sum of the earlier follow-ups; the baseline is the nadir when it is
        smaller or when none is given.
    new_lesions : bool, optional
        A new lesion appeared.
    targets_all_gone : bool, optional
        Every target lesion disappeared.
    non_target_progression : bool, optional
        Unequivocal progression of the non-target lesions.

    Returns
    -------
    RecistResult
        The response ("CR", "PR", "SD" or "PD"), the rule that decided it, both sums and the
        percent change from the baseline.

    Raises
    ------
    ValueError
        If the baseline sum is not positive or a sum is negative.

    Examples
    --------
    >>> recist_response(100.0, 70.0).response, recist_response(100.0, 70.1).response
    ('PR', 'SD')
    >>> r = recist_response(50.0, 60.0, nadir_sum_mm=40.0)
    >>> r.response, r.rule
    ('PD', 'sum 50.0 % and 20.0 mm above the nadir 40.0 mm (≥ 20 % and ≥ 5 mm)')
    """
    if not baseline_sum_mm > 0 or followup_sum_mm < 0 or (nadir_sum_mm is not None and nadir_sum_mm < 0):
        raise ValueError("the baseline sum must be positive and no sum negative")
    nadir = baseline_sum_mm if nadir_sum_mm is None else min(nadir_sum_mm, baseline_sum_mm)
    change = round(100.0 * (followup_sum_mm - baseline_sum_mm) / baseline_sum_mm, _DIGITS)
    result = lambda response, rule: RecistResult(  # noqa: E731 - the five outcomes share the sums
        response, rule, float(baseline_sum_mm), float(followup_sum_mm), change)
    if new_lesions:
        return result("PD", "new lesion")
    if non_target_progression:
        return result("PD", "unequivocal progression of non-target lesions")
    increase_mm = round(followup_sum_mm - nadir, _DIGITS)
    # a nadir of 0 (a complete response before): any reappearance is an infinite percentage
    increase = round(100.0 * increase_mm / nadir, _DIGITS) if nadir > 0 else (math.inf if increase_mm > 0 else 0.0)
    if increase >= PD_MIN_INCREASE_PERCENT and increase_mm >= PD_MIN_INCREASE_MM:
        return result("PD", f"sum {increase:.1f} % and {increase_mm:.1f} mm above the nadir {nadir:.1f} mm"
                            f" (≥ {PD_MIN_INCREASE_PERCENT:.0f} % and ≥ {PD_MIN_INCREASE_MM:.0f} mm)")
    if targets_all_gone:
        return result("CR", "every target lesion gone, no new lesion")
    if change <= -PR_MIN_DECREASE_PERCENT:
        return result("PR", f"sum {-change:.1f} % below the baseline (≥ {PR_MIN_DECREASE_PERCENT:.0f} %)")
    return result("SD", "neither a 30 % decrease from the baseline nor a 20 % and 5 mm increase over the nadir")
