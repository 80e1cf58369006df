"""Growth between two examinations: mean diameter, percent change, volume doubling time.

The mean diameter is Lung-RADS v2022's size (ACR): the mean of the long axis and the
perpendicular short axis, rounded to 0.1 mm. The volume doubling time is Schwartz's
exponential-growth formula (Schwartz 1961)::

    VDT = Δt · ln 2 / ln(V2 / V1)

A volume is known only to within its partial-volume rim: :func:`boundary_volumes` gives the
volume without the mask's boundary voxels (inner) and with a one-voxel rim added (outer);
:func:`partial_volume_bounds` takes half of each (a boundary voxel is on average half filled),
one voxel of uncertainty in all, centred on the measured edge; :func:`vdt_interval` gives the
doubling times those bounds allow. Nietert et al. (Chest 2009;
135:1580-7) show that such intervals are wide for small nodules and on thick slices, often
too wide to tell growth from none: :func:`no_measurable_growth` says when that is so.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry, check_volume

# the face neighbours: the boundary is the voxels that touch the outside through a face
_SIX_CONNECTED = ndi.generate_binary_structure(3, 1)


def round_tenth(value_mm: float) -> float:
    """``value_mm`` to 0.1 mm, halves rounded up (Lung-RADS), not to even as ``round`` does.

    Parameters
    ----------
    value_mm : float
        A length in mm.

    Returns
    -------
    float
        The length to 0.1 mm.

    Examples
    --------
    >>> round_tenth(5.95), round_tenth(5.949), round(0.25, 1), round_tenth(0.25)
    (6.0, 5.9, 0.2, 0.3)
    """
    # through the shortest decimal text of the float: 5.995 is 5.99499999... in binary
    return float(Decimal(repr(float(value_mm))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def mean_diameter_mm(long_axis_mm: float, short_axis_mm: float) -> float:
    """Lung-RADS v2022 mean diameter: (long + short) / 2, rounded half up to 0.1 mm.

    Parameters
    ----------
    long_axis_mm : float
        The longest diameter, in mm.
    short_axis_mm : float
        The diameter perpendicular to it on the same image, in mm.

    Returns
    -------
    float
        The mean diameter in mm, to 0.1 mm.

    Examples
    --------
    >>> mean_diameter_mm(7.04, 4.95)  # 5.995 rounds up, not to 5.9 as binary 5.99499... would
    6.0
    """
    total = Decimal(repr(float(long_axis_mm))) + Decimal(repr(float(short_axis_mm)))
    return float((total / 2).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def percent_change(before: float, after: float) -> float | None:
    """100 · (after − before) / before; None when ``before`` is 0.

    Parameters
    ----------
    before, after : float
        The earlier and the later value (a diameter, a volume, a RECIST sum).

    Returns
    -------
    float or None
        The change in percent of ``before``; None when ``before`` is 0.

    Examples
    --------
    >>> percent_change(50.0, 35.0), percent_change(0.0, 3.0)
    (-30.0, None)
    """
    if before == 0:
        return None
    return 100.0 * (after - before) / before


def volume_doubling_time_days(v1_ml: float, v2_ml: float, days: float | None) -> float | None:
    """Schwartz's volume doubling time VDT = Δt · ln 2 / ln(V2 / V1), in days.

    Parameters
    ----------
    v1_ml, v2_ml : float
        The volumes at the first and the second examination.
    days : float or None
        Δt, the days between them.

    Returns
    -------
    float or None
        The VDT: positive for growth, negative for shrinkage (the halving time, negated),
        ``math.inf`` when V2 == V1; None when ``days`` is None or ≤ 0 or a volume is ≤ 0.

    Examples
    --------
    >>> volume_doubling_time_days(1.0, 2.0, 100), volume_doubling_time_days(2.0, 1.0, 100)
    (100.0, -100.0)
    >>> volume_doubling_time_days(1.0, 1.0, 100), volume_doubling_time_days(1.0, 2.0, None)
    (inf, None)
    """
    if days is None or days <= 0 or v1_ml <= 0 or v2_ml <= 0:
        return None
    if v2_ml == v1_ml:
        return math.inf
    return days * math.log(2.0) / math.log(v2_ml / v1_ml)


def vdt_interval(v1_inner: float, v1_outer: float, v2_inner: float, v2_outer: float,
                 days: float) -> tuple[float, float]:
    """The volume doubling times allowed when each volume is known only between two bounds.

    The VDT falls as the growth ratio r = V2 / V1 rises (on each side of r = 1), so over the
    four corner combinations its extremes come from r_max = v2_outer / v1_inner and
    r_min = v2_inner / v1_outer.

    Parameters
    ----------
    v1_inner, v1_outer : float
        The first volume without and with its partial-volume rim (:func:`boundary_volumes`), mL;
        inner ≥ 0 (0 for a lesion that is all rim: then any growth rate is possible), outer > 0.
    v2_inner, v2_outer : float
        The same for the second examination.
    days : float
        Δt, the days between the examinations, > 0.

    Returns
    -------
    (float, float)
        ``(low, high)``, low ≤ high:

        * every combination grows (r_min > 1): ``0 < low ≤ high < inf``;
        * every combination shrinks (r_max < 1): ``-inf < low ≤ high < 0``;
        * otherwise the interval *includes infinity*: some combination gives V2 ≤ V1 and
          another V2 > V1 (or every one V2 == V1). It is returned as ``(low, math.inf)``,
          low the shortest VDT the bounds allow (``math.inf`` when none grows): "no faster
          than ``low``, possibly no growth at all". The shrinking combinations (negative
          VDTs, which continue the line beyond ±∞) are part of it. It means no measurable
          growth.

    Raises
    ------
    ValueError
        If ``days`` ≤ 0, an outer volume ≤ 0, an inner one < 0 or above its outer one.

    Examples
    --------
    >>> low, high = vdt_interval(0.9, 1.1, 1.9, 2.1, 100)
    >>> round(low), round(high)
    (82, 127)
    >>> vdt_interval(0.9, 1.1, 1.0, 1.2, 100)[1]
    inf
    """
    if not days > 0:
        raise ValueError(f"days must be positive, got {days}")
    if min(v1_inner, v2_inner) < 0 or v1_inner > v1_outer or v2_inner > v2_outer or min(v1_outer, v2_outer) <= 0:
        raise ValueError("outer volumes must be positive, inner ones between 0 and their outer one")
    # an inner volume of 0 (a lesion all rim) makes the ratio's bound 0 or ∞: the VDT's is then 0
    r_min = v2_inner / v1_outer
    r_max = v2_outer / v1_inner if v1_inner > 0 else math.inf
    vdt = lambda r: 0.0 if r in (0.0, math.inf) else days * math.log(2.0) / math.log(r)  # noqa: E731 - Schwartz
    if r_min > 1 or r_max < 1:
        return vdt(r_max), vdt(r_min)
    return (vdt(r_max) if r_max > 1 else math.inf), math.inf


def no_measurable_growth(interval: tuple[float, float]) -> bool:
    """True unless every VDT in ``interval`` (:func:`vdt_interval`) is positive and finite.

    An interval that includes infinity, or one of shrinkage alone, shows no measurable growth.

    Parameters
    ----------
    interval : (float, float)
        ``(low, high)`` from :func:`vdt_interval`, in days.

    Returns
    -------
    bool
        True when the interval does not show growth.

    Examples
    --------
    >>> no_measurable_growth((82.0, 127.0)), no_measurable_growth((40.0, math.inf))
    (False, True)
    >>> no_measurable_growth((-90.0, -50.0))
    True
    """
    low, high = interval
    return not (low > 0 and math.isfinite(high))


def boundary_volumes(mask: np.ndarray, geometry: VolumeGeometry) -> tuple[float, float]:
    """The mask's volume without and with its partial-volume rim, in mL.

    inner = the mask without its boundary voxels (those with a face neighbour outside it,
    a one-voxel 6-connected erosion); outer = the mask with a one-voxel rim added (a
    6-connected dilation). The true volume of a blurred edge lies between them.

    Parameters
    ----------
    mask : ndarray
        The lesion, bool (k, j, i) on ``geometry``'s grid.
    geometry : VolumeGeometry
        Its grid.

    Returns
    -------
    (float, float)
        ``(inner_ml, outer_ml)``.

    Raises
    ------
    ValueError
        If ``mask`` is not 3D on the geometry's grid.

    Examples
    --------
    >>> g = VolumeGeometry((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[3:6, 3:6, 3:6] = True
    >>> boundary_volumes(mask, g)  # the centre voxel alone; 27 + 6 · 9 voxels
    (0.001, 0.081)
    """
    check_volume(mask, geometry, "mask")
    boxes = ndi.find_objects(np.asarray(mask, dtype=np.uint8))
    if not boxes:
        return 0.0, 0.0
    # the lesion's box, padded: cheap on a whole CT, and a lesion at the volume's edge gets its rim there too
    mask = np.pad(np.asarray(mask, dtype=bool)[boxes[0]], 1)
    inner = ndi.binary_erosion(mask, _SIX_CONNECTED)
    outer = ndi.binary_dilation(mask, _SIX_CONNECTED)
    return float(inner.sum()) * geometry.voxel_volume_ml, float(outer.sum()) * geometry.voxel_volume_ml


def partial_volume_bounds(mask: np.ndarray, geometry: VolumeGeometry) -> tuple[float, float]:
    """The mask's volume known to within half a voxel each way, in mL.

    The edge of a segmented lesion runs through its boundary voxels (inside) and its rim
    (outside, :func:`boundary_volumes`), each on average half filled by the lesion:
    ``low = V - (V - inner) / 2`` and ``high = V + (outer - V) / 2``.

    Parameters
    ----------
    mask : ndarray
        The lesion, bool (k, j, i) on ``geometry``'s grid.
    geometry : VolumeGeometry
        Its grid.

    Returns
    -------
    (float, float)
        ``(low_ml, high_ml)``, low ≤ V ≤ high.

    Examples
    --------
    >>> g = VolumeGeometry((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    >>> mask = np.zeros(g.shape_kji, bool)
    >>> mask[3:6, 3:6, 3:6] = True
    >>> partial_volume_bounds(mask, g)  # 27 voxels: (27 + 1) / 2 and (27 + 81) / 2
    (0.014, 0.054)
    """
    inner, outer = boundary_volumes(mask, geometry)
    volume = float(np.count_nonzero(mask)) * geometry.voxel_volume_ml
    return 0.5 * (volume + inner), 0.5 * (volume + outer)
