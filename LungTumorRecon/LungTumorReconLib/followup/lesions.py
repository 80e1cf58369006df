"""Possible new lesions at follow-up, and mapping follow-up points back to the baseline.

A follow-up tumour candidate (:func:`~LungTumorReconLib.tumor.clustering.tumor_candidates`)
scoring at least ``MIN_SCORE`` is a possible new lesion when

* no followed tumour lies within its radius + the tumour's + ``NEW_LESION_MARGIN_MM`` (in
  follow-up space), and
* the share of dense voxels in a ball of its radius grew by at least ``MIN_DENSE_GAIN`` since
  the baseline, where the baseline's share is the largest of that ball at its place mapped
  back through the registration and shifted by one step (``max(2 mm, a voxel)``) along each
  axis, for the registration's error (0.1-1.6 mm on the synthetic pairs): an unfollowed nodule
  or a vessel that was there before is not new, whether or not the baseline's own candidate
  search listed it (that list changes with the noise). A new nodule in aerated lung gains
  nearly 1 (the tests' painted nodule); the vessel pieces listed on a synthetic pair gained
  0.5 at most. A candidate
  whose ball lies partly (over ``1 - MIN_SEEN``) beyond the baseline's field of view is not
  judged (a warning says how many).

A possible new lesion counts (RECIST progression) only when confirmed: all of them on the
user's word, or one the user clicked at follow-up. Not for clinical use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.tumor.measurements import TumorMeasurement

NEW_LESION_MARGIN_MM = 10.0
MIN_DENSE_GAIN = 0.6  # growth of the dense share of the candidate's ball (module docstring)
MIN_SEEN = 0.8  # share of that ball inside the baseline CT for it to be judged
DENSE_HU = -500.0  # the candidates' own threshold
FOLLOWUP_CANDIDATES = 20
# the candidates' score (log volume x roundness / elongation): a round nodule of 5-6 mm scores
# 0.08-0.4 on 0.7-3 mm voxels, the vessel pieces listed on the real pairs 0.00-0.04. A nodule
# of 6-8 mm on 5 mm slices lies on one slice and scores 0 too: missed, as a limit of thick slices
MIN_SCORE = 0.05


@dataclass
class NewLesion:
    """A follow-up lesion with no baseline tumour near it; ``confirmed`` ones count as new."""

    lesion_id: str
    centroid_lps: tuple[float, float, float]
    volume_ml: float
    diameter_mm: float  # of the sphere of its volume
    score: float | None
    source: str  # "candidate" or "follow-up seed"
    confirmed: bool = False
    measurement: TumorMeasurement | None = None
    mask: np.ndarray | None = None


def radius_of_volume_mm(volume_ml: float) -> float:
    """The radius of a sphere of ``volume_ml``, in mm.

    Examples
    --------
    >>> round(radius_of_volume_mm(4.18879), 3)
    10.0
    """
    return float((3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))


def baseline_points_lps(registration, points_lps: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Follow-up LPS points (n, 3) back to the baseline: the inverse of the registration's map.

    Fixed-point iteration ``p += q - T(p)``: it converges when T is near a translation (a
    patient's repositioning by a few degrees, and breathing, are), and needs no inverse
    transform (a B-spline has none in closed form).

    Parameters
    ----------
    registration : Registration
        Its ``map_points_lps`` maps baseline points to the follow-up.
    points_lps : ndarray
        (n, 3) follow-up points.
    iterations : int, optional
        At most this many steps (it stops once every point is within 0.01 mm).

    Returns
    -------
    ndarray
        (n, 3) baseline points p with T(p) = q.

    Examples
    --------
    >>> class Shift:  # a registration that moves everything 5 mm to the left
    ...     def map_points_lps(self, p):
    ...         return np.asarray(p) + [5.0, 0.0, 0.0]
    >>> baseline_points_lps(Shift(), [[10.0, 0.0, 0.0]]).tolist()
    [[5.0, 0.0, 0.0]]
    """
    target = np.atleast_2d(np.asarray(points_lps, float))
    p = target.copy()
    for _ in range(iterations):
        error = target - np.asarray(registration.map_points_lps(p), float).reshape(-1, 3)
        p += error
        if np.abs(error).max() < 0.01:
            break
    return p


def dense_near(ct: CTVolume, centre_lps, radius_mm: float) -> tuple[float, float]:
    """Within a ball around ``centre_lps``: the share of its voxels inside the CT that are dense
    (> ``DENSE_HU``), and the share of the ball inside the CT (0 when none is)."""
    g = ct.geometry
    spacing = np.asarray(g.spacing[::-1])
    centre = g.lps_to_kji(np.asarray(centre_lps, float))
    lo = np.maximum(np.floor(centre - radius_mm / spacing).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius_mm / spacing).astype(int) + 1, g.shape_kji)
    if np.any(hi <= lo):
        return 0.0, 0.0
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    kk, jj, ii = np.ogrid[box]
    ball = (((kk - centre[0]) * spacing[0]) ** 2 + ((jj - centre[1]) * spacing[1]) ** 2
            + ((ii - centre[2]) * spacing[2]) ** 2) <= radius_mm**2
    inside = int(ball.sum())
    whole = 4.0 / 3.0 * np.pi * radius_mm**3 / float(np.prod(spacing))
    if inside == 0:
        return 0.0, 0.0
    return float(((ct.array[box] > DENSE_HU) & ball).sum()) / inside, min(1.0, inside / whole)


def candidates_in_lungs(ct: CTVolume, lungs: np.ndarray, most: int) -> list[tuple[np.ndarray, float, float, float]]:
    """Tumour candidates in the lungs as (centre LPS, radius mm, volume mL, score), best first."""
    from LungTumorReconLib.tumor.clustering import tumor_candidates

    box = ndi.find_objects(lungs.astype(np.uint8))[0]  # the lungs' box: the search is cheaper there
    g = ct.geometry
    start = np.array([s.start for s in box], float)
    sub = VolumeGeometry(size=tuple(s.stop - s.start for s in box[::-1]), spacing=g.spacing,
                         origin=tuple(float(v) for v in g.kji_to_lps(start)), direction=g.direction)
    found = tumor_candidates(ct.array[box], sub, lungs[box], max_candidates=most)
    return [(sub.kji_to_lps(np.array(c.centroid_kji, float)), radius_of_volume_mm(c.volume_ml), c.volume_ml,
             c.score) for c in found]


Segment = Callable[[tuple], tuple]  # point -> (mask or None, measurement or None, why not or None)


def find_new_lesions(baseline: CTVolume, followup: CTVolume, followup_lungs: np.ndarray,
                     known: list[tuple[np.ndarray, float]], registration, clicks: list[Seed], confirm_all: bool,
                     segment: Segment, warnings: list[str]) -> list[NewLesion]:
    """The possible new lesions (module docstring), the confirmed ones segmented and measured.

    Parameters
    ----------
    baseline, followup : CTVolume
        The two CTs.
    followup_lungs : ndarray
        Both lungs of the follow-up, bool (k, j, i) on its grid: where candidates are sought.
    known : list of (ndarray, float)
        The followed tumours in follow-up space: (centre LPS, radius mm).
    registration : Registration
        Maps baseline points to the follow-up.
    clicks : list of Seed
        The user's follow-up ``tumor`` points that are on no followed tumour: each confirms the
        candidate it is on, or is a new lesion of its own.
    confirm_all : bool
        Every candidate listed counts as new.
    segment : callable
        The tumour method at a follow-up point: (mask, measurement, why not).
    warnings : list of str
        Extended with what could not be segmented.

    Returns
    -------
    list of NewLesion
        Candidates first (best first), then the clicks on no candidate; ids "new 1", "new 2"...
    """
    found = [c for c in candidates_in_lungs(followup, followup_lungs, FOLLOWUP_CANDIDATES) if c[3] >= MIN_SCORE
             and not any(np.linalg.norm(c[0] - k) <= c[1] + r + NEW_LESION_MARGIN_MM for k, r in known)]
    lesions: list[NewLesion] = []
    unjudged = 0
    before = baseline_points_lps(registration, np.array([c for c, *_ in found])) if found else []
    step = max(2.0, *baseline.geometry.spacing)
    offsets = [np.zeros(3)] + [sign * step * axis for axis in np.eye(3) for sign in (1, -1)]
    for (centre, radius, volume, score), back in zip(found, before):
        then = [dense_near(baseline, back + offset, radius) for offset in offsets]
        if then[0][1] < MIN_SEEN:  # partly beyond the baseline's field of view: too little to compare with
            unjudged += 1
            continue
        if dense_near(followup, centre, radius)[0] - max(share for share, _ in then) < MIN_DENSE_GAIN:
            continue  # it was there before
        lesions.append(NewLesion(f"new {len(lesions) + 1}", tuple(float(v) for v in centre), volume,
                                 2 * radius, score, "candidate", confirmed=confirm_all))
    if unjudged:
        warnings.append(f"{unjudged} follow-up candidate(s) lie beyond the baseline's field of view: not judged as "
                        "new or not")
    for click in clicks:
        near = [n for n in lesions if n.source == "candidate"
                and np.linalg.norm(np.subtract(click.lps, n.centroid_lps)) <= n.diameter_mm / 2 + NEW_LESION_MARGIN_MM]
        if near:
            near[0].confirmed = True
        else:
            lesions.append(NewLesion(f"new {len(lesions) + 1}", tuple(click.lps), 0.0, 0.0, None, "follow-up seed",
                                     confirmed=True))
    for lesion in (n for n in lesions if n.confirmed):
        mask, measurement, why = segment(lesion.centroid_lps)
        if mask is None:
            warnings.append(f"{lesion.lesion_id} (a confirmed new lesion): not segmented: {why}")
            continue
        lesion.mask, lesion.measurement = mask, measurement
        lesion.volume_ml = measurement.volume_ml
        lesion.diameter_mm = 2 * radius_of_volume_mm(measurement.volume_ml)
    return lesions
