"""Follow-up pairs with known truth: a baseline CT and a later CT of the same patient, with
the tumour grown (or shrunk) by a known amount and the patient moved and breathing differently.

* :func:`synthetic_followup_pair`: the synthetic thorax (:mod:`synthetic_thorax`) rendered
  twice with the same anatomy, the same tumour shape and centre, the follow-up's tumour
  scaled to ``growth_factor`` times the volume, and a fresh noise realisation;
* :func:`real_followup_pair`: a real CT and its tumour mask; the follow-up is the same CT
  with the tumour grown by painting its own HU into a band around it (or shrunk by painting
  the surrounding lung's HU into its rim), the new edge as soft as the old one. This only
  approximates real growth: the painted band has the tumour's HU distribution but not its
  texture's spatial correlation, and the rest of the lung is unchanged voxel for voxel apart
  from the motion.

Then the follow-up is moved (:class:`PatientMotion`): a smooth breathing deformation that
compresses the lungs cranio-caudally (zero at the apex, ``breathing_mm`` at the diaphragm)
followed by a rigid repositioning on the table. Both are applied with SimpleITK resampling,
linear for the CT (its end slices continued above and below, air beside it) and nearest for
the labels. The truth
mapping from a baseline point to the same tissue in the follow-up is analytic
(:meth:`PatientMotion.forward`), and also given as a SimpleITK transform in the convention
of :class:`LungTumorReconLib.followup.registration.Registration`.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.ct import CTVolume

from .synthetic_anatomy import _Anatomy
from .synthetic_parameters import DIAPHRAGM_DOMES, FOV_CENTRE_LPS, LUNG_APEX_Z, TUMOR_KINDS
from .synthetic_render import _Renderer
from .synthetic_shapes import _Capsule, _Lesion

BASELINE_DATE = datetime.date(2026, 1, 1)
# Mostly about the cranio-caudal axis, as a patient lies a little turned on the table.
ROTATION_AXIS = (0.25, 0.15, 1.0)
FIELD_SPACING_MM = 4.0  # grid of the breathing displacement field (it is smooth over ~100 mm)
FIELD_MARGIN_MM = 10.0
NOISE_SEED_OFFSET = 1_000_003  # the follow-up's noise differs from the baseline's
LABEL_BITS = {"right lung": 1, "left lung": 2, "tumor": 4}


@dataclass(frozen=True)
class PatientMotion:
    """Known motion from the baseline to the follow-up (LPS mm).

    A baseline point ``p`` moves first by breathing, ``b = p + d(p)`` with
    ``d = (0, 0, breathing_mm * w(z) * g(y))``: ``w`` rising quadratically from 0 at ``apex_z`` to 1 at
    ``base_z`` (and below), ``g`` from 0.6 (anterior) to 1.0 (posterior) around ``centre_lps``;
    the lungs are compressed upwards (expiration). Then the rigid repositioning
    ``q = R (b - c) + c + shift``, with ``R`` a rotation of ``rotation_deg`` about ``axis``
    and ``c = centre_lps``.
    """

    shift_mm: tuple[float, float, float]
    rotation_deg: float
    centre_lps: tuple[float, float, float]
    breathing_mm: float
    apex_z: float
    base_z: float
    axis: tuple[float, float, float] = ROTATION_AXIS

    def rotation_matrix(self) -> np.ndarray:
        """The rigid part's 3×3 rotation (Rodrigues' formula)."""
        u = np.asarray(self.axis, float) / np.linalg.norm(self.axis)
        a = np.deg2rad(self.rotation_deg)
        k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
        return np.eye(3) + np.sin(a) * k + (1.0 - np.cos(a)) * (k @ k)

    def breathing(self, points: np.ndarray) -> np.ndarray:
        """The breathing displacement ``d`` (n, 3) at baseline points (n, 3)."""
        p = np.atleast_2d(np.asarray(points, float))
        # quadratic: flat at the apex, steepest at the diaphragm (not a scaling that an affine stage absorbs)
        t = np.clip((self.apex_z - p[:, 2]) / (self.apex_z - self.base_z), 0.0, 1.0)
        w = t * t
        g = 0.8 + 0.2 * np.clip((p[:, 1] - self.centre_lps[1]) / 100.0, -1.0, 1.0)
        d = np.zeros_like(p)
        d[:, 2] = self.breathing_mm * w * g
        return d

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Baseline LPS points (n, 3) to where the same tissue lies in the follow-up."""
        p = np.atleast_2d(np.asarray(points, float))
        c = np.asarray(self.centre_lps, float)
        return (p + self.breathing(p) - c) @ self.rotation_matrix().T + c + np.asarray(self.shift_mm, float)

    def _unbreathe(self, points: np.ndarray) -> np.ndarray:
        # solve p + d(p) = b; d moves z only and changes slowly (|dd/dz| < 0.2): fixed point
        b = np.atleast_2d(np.asarray(points, float))
        p = b.copy()
        for _ in range(30):
            p[:, 2] = b[:, 2] - self.breathing(p)[:, 2]
        return p

    def inverse(self, points: np.ndarray) -> np.ndarray:
        """Follow-up LPS points (n, 3) back to the baseline (the inverse of :meth:`forward`)."""
        q = np.atleast_2d(np.asarray(points, float))
        c = np.asarray(self.centre_lps, float)
        b = (q - c - np.asarray(self.shift_mm, float)) @ self.rotation_matrix() + c
        return self._unbreathe(b)

    def reach_mm(self, geometry: VolumeGeometry) -> float:
        """A bound on how far any point of ``geometry``'s box moves (mm)."""
        half_diagonal = 0.5 * float(np.linalg.norm(np.asarray(geometry.size) * np.asarray(geometry.spacing)))
        return (float(np.linalg.norm(self.shift_mm)) + abs(self.breathing_mm)
                + half_diagonal * np.sin(np.deg2rad(min(abs(self.rotation_deg), 90.0))) + 2.0)

    def _rigid(self) -> sitk.AffineTransform:
        rigid = sitk.AffineTransform(3)
        rigid.SetMatrix(tuple(self.rotation_matrix().ravel()))
        rigid.SetCenter(tuple(float(v) for v in self.centre_lps))
        rigid.SetTranslation(tuple(float(v) for v in self.shift_mm))
        return rigid

    def _field(self, geometry: VolumeGeometry, inverse: bool) -> sitk.DisplacementFieldTransform:
        """The breathing (or its inverse) as a displacement field over ``geometry``'s box."""
        size = np.asarray(geometry.size) - 1
        corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], float)
        lps = geometry.ijk_to_lps(corners)
        margin = FIELD_MARGIN_MM + self.reach_mm(geometry)  # the field must cover every point mapped into the box
        lo, hi = lps.min(axis=0) - margin, lps.max(axis=0) + margin
        n = np.ceil((hi - lo) / FIELD_SPACING_MM).astype(int) + 1
        grid = VolumeGeometry(size=tuple(int(v) for v in n), spacing=(FIELD_SPACING_MM,) * 3,
                              origin=tuple(float(v) for v in lo))
        kk, jj, ii = np.meshgrid(*(np.arange(m) for m in n[::-1]), indexing="ij")
        points = grid.kji_to_lps(np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1))
        d = (self._unbreathe(points) - points) if inverse else self.breathing(points)
        image = sitk.GetImageFromArray(d.reshape(*n[::-1], 3), isVector=True)
        grid.apply_to_sitk(image)
        return sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))

    def forward_transform(self, geometry: VolumeGeometry) -> sitk.Transform:
        """:meth:`forward` as a SimpleITK transform (baseline → follow-up), valid over ``geometry``'s box."""
        return sitk.CompositeTransform([self._rigid(), self._field(geometry, inverse=False)])

    def resampling_transform(self, geometry: VolumeGeometry) -> sitk.Transform:
        """:meth:`inverse` as a SimpleITK transform: what resamples the moved baseline-frame
        image onto the follow-up grid ``geometry``."""
        rigid_inverse = self._rigid().GetInverse()
        return sitk.CompositeTransform([self._field(geometry, inverse=True), rigid_inverse])


@dataclass
class FollowupPair:
    """A baseline and a follow-up CT with known truth.

    ``baseline_labels`` and ``followup_labels`` hold bool (k, j, i) masks on each CT's grid:
    ``"tumor"``, ``"right lung"``, ``"left lung"``. ``truth_transform`` maps a baseline LPS
    point to the follow-up (the convention of the registration's ``transform``);
    :meth:`map_points_lps` does the same analytically. ``seed_lps`` is a point inside the
    baseline tumour where a user would click (not necessarily its centre).
    """

    baseline: CTVolume
    followup: CTVolume
    baseline_labels: dict[str, np.ndarray]
    followup_labels: dict[str, np.ndarray]
    motion: PatientMotion
    truth_transform: sitk.Transform
    baseline_date: datetime.date
    followup_date: datetime.date
    baseline_volume_ml: float
    followup_volume_ml: float
    seed_lps: tuple[float, float, float]
    info: dict = field(default_factory=dict)

    def map_points_lps(self, points_lps: np.ndarray) -> np.ndarray:
        """The truth: baseline LPS points (n, 3) to the same tissue's place in the follow-up."""
        return self.motion.forward(points_lps)

    def lungs(self, which: str = "baseline") -> np.ndarray:
        """Both lungs of the ``"baseline"`` or the ``"followup"`` as one mask."""
        labels = self.baseline_labels if which == "baseline" else self.followup_labels
        return labels["right lung"] | labels["left lung"]

    @property
    def days(self) -> int:
        return (self.followup_date - self.baseline_date).days


def tumor_centroid_lps(mask: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """The centroid of a (k, j, i) mask in LPS mm."""
    return geometry.kji_to_lps(np.argwhere(mask).mean(axis=0))


def click_point_lps(mask: np.ndarray, geometry: VolumeGeometry) -> tuple[float, float, float]:
    """Where a user would click: the voxel nearest the centroid of the mask's largest slice section."""
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    jj, ii = np.nonzero(mask[k])
    n = int(np.argmin((jj - jj.mean()) ** 2 + (ii - ii.mean()) ** 2))
    return tuple(float(v) for v in geometry.kji_to_lps(np.array([k, jj[n], ii[n]], float)))


def synthetic_followup_pair(seed: int, growth_factor: float, shift_mm: Sequence[float] = (8.0, -5.0, 6.0),
                            rotation_deg: float = 3.0, breathing_mm: float = 8.0,
                            size: Sequence[int] = (160, 160, 60), spacing: Sequence[float] = (2.0, 2.0, 2.5),
                            days: int = 90, kind: str = "solid", radius_mm: float = 8.0) -> FollowupPair:
    """A synthetic pair: the thorax of ``seed`` with one tumour of ``kind``, its volume times
    ``growth_factor`` in the follow-up (1: unchanged, 2: doubled, 0.5: halved).

    ``make_thorax`` draws the tumour's place among the lattice points deep enough for its
    radius, so a different radius moves the tumour elsewhere. Hence the anatomy is built once
    with the larger of the two radii and the tumour's shapes are scaled about its centre for
    the other: same anatomy, same tumour shape and centre, different size. ``size`` (voxels,
    IJK) and ``spacing`` (mm) give the grid, centred on the thorax as in ``make_thorax``.
    """
    if kind not in TUMOR_KINDS:
        raise ValueError(f"kind must be one of {TUMOR_KINDS}, got {kind!r}")
    if growth_factor <= 0:
        raise ValueError(f"growth_factor must be > 0, got {growth_factor}")
    radii = (float(radius_mm), float(radius_mm) * float(growth_factor) ** (1.0 / 3.0))
    if not all(1.0 <= r <= 60.0 for r in radii):
        raise ValueError(f"the tumour's radii {radii} must lie within 1-60 mm")
    size = tuple(int(n) for n in size)
    spacing = tuple(float(s) for s in spacing)
    origin = tuple(c - 0.5 * (n - 1) * s for c, n, s in zip(FOV_CENTRE_LPS, size, spacing))
    geometry = VolumeGeometry(size=size, spacing=spacing, origin=origin)
    r_max = max(radii)
    anatomy = _Anatomy(int(seed), lungs_touch=False, tumor_kinds=(kind,), tumor_radii=(r_max,))
    rendered = []
    for n, radius in enumerate(radii):
        scaled = copy.copy(anatomy)
        scaled.tumors = [_scaled_tumor(t, radius / r_max) for t in anatomy.tumors]
        renderer = _Renderer(scaled, geometry, seed=int(seed) + n * NOISE_SEED_OFFSET, noise_hu=20.0, blur_mm=1.0)
        ct, labels, _ = renderer.render()
        rendered.append((ct, {name: labels[name] for name in LABEL_BITS}))
    if not rendered[0][1]["tumor"].any():
        raise ValueError(f"the tumour of seed {seed} lies outside the field of view; take another seed or grid")
    # breathing from the apex to the diaphragm's domes (everything below moves as much)
    base_z = float(np.mean([d["peak_z"] for d in DIAPHRAGM_DOMES]))
    motion = PatientMotion(tuple(float(v) for v in shift_mm), float(rotation_deg), tuple(FOV_CENTRE_LPS),
                           float(breathing_mm), apex_z=LUNG_APEX_Z, base_z=base_z)
    pair = _make_pair(CTVolume(rendered[0][0], geometry), rendered[0][1], rendered[1][0], rendered[1][1],
                      motion, days)
    pair.info.update(seed=int(seed), kind=kind, radii_mm=radii,
                     centre_lps=tuple(float(v) for v in anatomy.tumors[0].centre))
    return pair


def _scaled_tumor(tumor, factor: float):
    """A copy of a synthetic tumour with all its shapes scaled by ``factor`` about its centre."""
    out = copy.deepcopy(tumor)
    c = out.centre
    out.radius *= factor
    for shapes, *_ in out.layers + out.surroundings:
        for shape in shapes:
            if isinstance(shape, _Lesion):
                shape.centre = c + factor * (shape.centre - c)
                shape.radius *= factor
                reach = shape.radius * (shape.stretch.max() + np.abs(shape.lobe_amps).sum())
                shape.lo, shape.hi = shape.centre - reach, shape.centre + reach
            elif isinstance(shape, _Capsule):
                shape.p0 = c + factor * (shape.p0 - c)
                shape.length *= factor
                shape.r0 *= factor
                shape.r1 *= factor
                p1, r = shape.p0 + shape.axis * shape.length, max(shape.r0, shape.r1)
                shape.lo, shape.hi = np.minimum(shape.p0, p1) - r, np.maximum(shape.p0, p1) + r
            else:
                raise TypeError(f"cannot scale a {type(shape).__name__}")
    return out


def _make_pair(baseline: CTVolume, baseline_labels: dict[str, np.ndarray], followup_hu: np.ndarray,
               followup_labels: dict[str, np.ndarray], motion: PatientMotion, days: int) -> FollowupPair:
    """Move the follow-up (drawn in the baseline's frame and grid) by ``motion`` and assemble the pair."""
    g = baseline.geometry
    resampling = motion.resampling_transform(g)
    # Tissue moves into the field of view from above and below it: continue the end slices
    # (edge padding) so the follow-up is anatomy up to its borders, as a real scan is;
    # air beside the body is real air.
    pad = int(np.ceil(motion.reach_mm(g) / g.spacing[2]))
    padded = VolumeGeometry(size=(g.size[0], g.size[1], g.size[2] + 2 * pad), spacing=g.spacing,
                            origin=tuple(float(v) for v in g.kji_to_lps(np.array([-pad, 0.0, 0.0]))),
                            direction=g.direction)
    reference = sitk.Image(*g.size, sitk.sitkFloat32)
    g.apply_to_sitk(reference)
    image = sitk.GetImageFromArray(np.pad(followup_hu.astype(np.float32), ((pad, pad), (0, 0), (0, 0)), mode="edge"))
    padded.apply_to_sitk(image)
    hu = sitk.GetArrayFromImage(sitk.Resample(image, reference, resampling, sitk.sitkLinear, -1000.0))
    if np.issubdtype(baseline.array.dtype, np.integer):
        hu = np.rint(hu).astype(baseline.array.dtype)
    packed = np.zeros(followup_hu.shape, np.uint8)
    for name, bit in LABEL_BITS.items():
        packed[followup_labels[name]] |= bit
    label_image = sitk.GetImageFromArray(np.pad(packed, ((pad, pad), (0, 0), (0, 0)), mode="edge"))
    padded.apply_to_sitk(label_image)
    moved_labels = sitk.GetArrayFromImage(sitk.Resample(label_image, reference, resampling,
                                                        sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
    labels = {name: (moved_labels & bit) > 0 for name, bit in LABEL_BITS.items()}
    baseline_labels = {name: np.asarray(baseline_labels[name], bool) for name in LABEL_BITS}
    return FollowupPair(
        baseline=baseline,
        followup=CTVolume(hu, g),
        baseline_labels=baseline_labels,
        followup_labels=labels,
        motion=motion,
        truth_transform=motion.forward_transform(g),
        baseline_date=BASELINE_DATE,
        followup_date=BASELINE_DATE + datetime.timedelta(days=int(days)),
        baseline_volume_ml=float(baseline_labels["tumor"].sum() * g.voxel_volume_ml),
        followup_volume_ml=float(labels["tumor"].sum() * g.voxel_volume_ml),
        seed_lps=click_point_lps(baseline_labels["tumor"], g),
    )


def real_followup_pair(ct: CTVolume, tumor_mask: np.ndarray, grow_mm: float,
                       shift_mm: Sequence[float] = (8.0, -5.0, 6.0), rotation_deg: float = 3.0,
                       breathing_mm: float = 8.0, days: int = 90, lungs: dict[str, np.ndarray] | None = None,
                       seed: int = 0) -> FollowupPair:
    """A pair from one real CT: the follow-up is the same CT with the tumour grown by
    ``grow_mm`` (negative: shrunk), then moved by breathing and repositioning.

    An approximation of real growth: the tumour's own HU (values drawn from its interior, so
    its median and spread) are painted into a band of ``grow_mm`` around it, within the lungs
    (where the lungs are known), with the old edge's partial-volume profile. Shrinking
    paints the HU of the lung around the tumour into its outer rim instead. ``lungs`` are the
    CT's two lungs (``{"right lung", "left lung"}``; by default ``segment_lungs_threshold``'s);
    the breathing runs from the lungs' apex to 30 % of their height above their lowest point
    (about the diaphragm's domes). ``seed`` draws the painted values.
    """
    from LungTumorReconLib.lungs.threshold import ThresholdLungParameters, segment_lungs_threshold

    g = ct.geometry
    tumor = np.asarray(tumor_mask, bool)
    if tumor.shape != g.shape_kji or not tumor.any():
        raise ValueError("tumor_mask must be a non-empty (k, j, i) mask on the CT's grid")
    if lungs is None:
        lungs = segment_lungs_threshold(ct.array, g, ThresholdLungParameters())
    lungs = {name: np.asarray(lungs.get(name, np.zeros(tumor.shape, bool)), bool)
             for name in ("right lung", "left lung")}
    both = lungs["right lung"] | lungs["left lung"]
    grown_hu, grown = _paint_growth(np.asarray(ct.array), tumor, both, g, float(grow_mm), np.random.default_rng(seed))
    # the lungs' extent along z (LPS, mm) sets the breathing's profile: their bounding box's corners
    box = ndi.find_objects((both | tumor).astype(np.uint8))[0]
    ends = [(b.start, b.stop - 1) for b in box]
    corners = np.array([[k, j, i] for k in ends[0] for j in ends[1] for i in ends[2]], float)
    z = g.kji_to_lps(corners)[:, 2]
    apex_z, low_z = float(z.max()), float(z.min())
    centre = tuple(float(v) for v in g.kji_to_lps(np.array(ndi.center_of_mass(both | tumor))))
    motion = PatientMotion(tuple(float(v) for v in shift_mm), float(rotation_deg), centre, float(breathing_mm),
                           apex_z=apex_z, base_z=low_z + 0.3 * (apex_z - low_z))
    baseline_labels = {"tumor": tumor, **lungs}
    # the band is painted inside the lungs (their holes filled), so the lungs stay as they were
    followup_labels = {"tumor": grown, **lungs}
    pair = _make_pair(ct, baseline_labels, grown_hu, followup_labels, motion, days)
    pair.info.update(grow_mm=float(grow_mm))
    return pair


def _paint_growth(hu: np.ndarray, tumor: np.ndarray, lungs: np.ndarray, geometry: VolumeGeometry, grow_mm: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The CT with the tumour grown (or shrunk) by ``grow_mm``, and the new tumour mask.

    The new edge gets the old one's profile: each voxel near either surface becomes
    ``a(s) T + (1 - a(s)) B``, ``s`` its signed distance to the new surface, ``a`` the old edge's
    fraction of tumour at that distance (:func:`_edge_profile`), ``T`` the tumour (its own HU
    deep inside the old tumour, values drawn from its interior elsewhere) and ``B`` the
    background (the CT's own HU away from the old tumour, values drawn from the lung around it
    elsewhere). So the partial-volume rim that a segmenter includes or leaves out is as wide at
    follow-up as at baseline.
    """
    spacing_kji = np.asarray(geometry.spacing[::-1], float)
    # work in a box around the tumour: distance maps of a whole CT are slow
    pad = np.ceil((abs(grow_mm) + 20.0) / spacing_kji).astype(int)
    idx = np.argwhere(tumor)
    lo, hi = np.maximum(idx.min(axis=0) - pad, 0), np.minimum(idx.max(axis=0) + pad + 1, tumor.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    t, lung, h = tumor[box], lungs[box], hu[box].astype(np.float32)
    old_s = _signed_distance(t, spacing_kji)
    if grow_mm >= 0:
        band = ~t & (old_s <= grow_mm)
        if (band & lung).any():
            band &= lung | ndi.binary_dilation(t)  # into the lungs (and the tumour's own rim)
        new = t | band
    else:
        new = t & (old_s < grow_mm)
    if not new.any():
        raise ValueError(f"shrinking by {-grow_mm} mm leaves no tumour")
    deep = old_s < -EDGE_MM
    core_hu = h[deep] if deep.sum() >= 20 else h[t]
    shell = lung & (old_s > 3.0) & (old_s <= 15.0) & (h < -400.0)
    lung_hu = h[shell] if shell.sum() >= 20 else np.full(20, -850.0, np.float32)
    profile_s, profile_a = _edge_profile(h, old_s, float(np.median(core_hu)), float(np.median(lung_hu)))
    new_s = _signed_distance(new, spacing_kji)
    near = (np.abs(new_s) <= EDGE_MM) | (np.abs(old_s) <= EDGE_MM)
    near &= np.abs(new_s - old_s) > 0.5 * spacing_kji.min()  # where the surface did not move, the CT as it was
    n = int(near.sum())
    inside_old, beyond_old = old_s[near] < -EDGE_MM, old_s[near] > EDGE_MM
    tumour_hu = np.where(inside_old, h[near], rng.choice(core_hu, n))
    background_hu = np.where(beyond_old, h[near], rng.choice(lung_hu, n))
    a = np.interp(new_s[near], profile_s, profile_a)
    painted = h.copy()
    painted[near] = a * tumour_hu + (1.0 - a) * background_hu
    out, mask = hu.copy(), tumor.copy()
    out[box] = np.rint(painted).astype(hu.dtype) if np.issubdtype(hu.dtype, np.integer) else painted.astype(hu.dtype)
    mask[box] = new
    return out, mask


EDGE_MM = 4.0  # how far either side of a surface its partial-volume profile is measured and painted


def _signed_distance(mask: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """mm to the mask's surface: negative inside, positive outside."""
    return (ndi.distance_transform_edt(~mask, sampling=spacing_kji)
            - ndi.distance_transform_edt(mask, sampling=spacing_kji)).astype(np.float32)


def _edge_profile(hu: np.ndarray, signed_mm: np.ndarray, inside_hu: float, outside_hu: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The tumour's edge as the fraction of tumour ``a(s)`` at signed distance ``s`` (mm) from its
    surface: the median HU at ``s`` scaled between the lung's and the interior's medians, made
    to fall monotonically from 1 (at ``-EDGE_MM``) to 0 (at ``+EDGE_MM``)."""
    edges = np.arange(-EDGE_MM, EDGE_MM + 0.25, 0.5)
    centres, fractions = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        values = hu[(signed_mm >= a) & (signed_mm < b)]
        if values.size >= 10:
            centres.append(0.5 * (a + b))
            fractions.append((float(np.median(values)) - outside_hu) / (inside_hu - outside_hu))
    s = np.concatenate([[-EDGE_MM], centres, [EDGE_MM]])
    a = np.clip(np.concatenate([[1.0], fractions, [0.0]]), 0.0, 1.0)
    return s, np.minimum.accumulate(a)
