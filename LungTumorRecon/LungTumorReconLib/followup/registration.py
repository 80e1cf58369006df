"""Registering a follow-up CT to its baseline: rigid, affine, then a coarse B-spline, on the lungs.

All optimisation is SimpleITK's ``ImageRegistrationMethod`` (ITK's v4 registration framework);
this module is only the glue: it prepares the images, chains the stages and checks the result.

1. Both CTs are clipped to a lung window (:attr:`RegistrationParameters.hu_window`: bone,
   muscle and contrast saturate, so the lung interior, its vessels and the pleural outline
   drive the metric) and averaged down to about ``spacing_mm`` (``BinShrink``: fast and
   anti-aliased). The metric only looks inside the lungs dilated by ``mask_margin_mm``.
2. Rigid (``Euler3DTransform``), started by aligning the two lungs' centres of mass, then
   affine, both by regular-step gradient descent over two resolutions.
3. With ``deformable``, a B-spline with control points every ``bspline_spacing_mm`` over the
   lungs, on top of the affine (L-BFGS-B): breathing moves the lung bases 10-20 mm more than
   the apices. Its cost grows with samples x control points, hence the coarse mesh and the
   fixed number of metric samples.
4. Each stage is scored by the Dice of the baseline lungs with the follow-up lungs mapped
   onto the baseline grid; a final Dice below :data:`MIN_LUNG_DICE` is refused (an affine
   result far below it skips the B-spline, which cannot rescue it).

The metric is Mattes mutual information in every stage: the breathing state and the scanner
change the lung's HU between scans (expiration makes it denser), which a least-squares metric
fits as motion, while mutual information only needs the intensities to co-vary. Measured on
follow-up pairs with known truth (``LungTumorReconDev.followup_pairs``), mean squares was as
good for rigid and affine and 3-4x faster for the B-spline, but its B-spline placed the tumour
centre worse on the real-CT pairs (LIDC-IDRI-0001 1.5 mm against 0.5 mm, lung1 0.5 against 0.2).

The transform maps a point in the BASELINE's LPS space to the same tissue in the FOLLOW-UP's
LPS space: ITK's resampling convention, with the baseline as the fixed image. Resampling the
follow-up through it puts the follow-up on the baseline's grid (:meth:`Registration.to_baseline`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from LungTumorReconLib.coordinates import VolumeGeometry, check_same_shape, check_volume
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import CTVolume

MIN_LUNG_DICE = 0.8
# an affine result this far below MIN_LUNG_DICE is refused without trying the B-spline
HOPELESS_MARGIN = 0.15
# Dice is counted on every n-th baseline voxel along each axis, n chosen for about this step.
DICE_STEP_MM = 2.0


@dataclass(frozen=True)
class RegistrationParameters:
    """Settings of :func:`register_followup` (the defaults fit chest CTs of 0.5-3 mm)."""

    spacing_mm: float = 3.0  # working grid: both CTs are averaged down to about this
    hu_window: tuple[float, float] = (-1000.0, -200.0)  # lung window the metric sees
    mask_margin_mm: float = 10.0  # the lungs dilated by this are where the metric looks
    metric: str = "mattes"  # or "meansquares", "correlation" (see the module's docstring)
    histogram_bins: int = 32
    samples: int = 15000  # voxels the metric samples in the mask (random, fixed seed): its cost
    rigid_iterations: int = 150
    affine_iterations: int = 100
    bspline_spacing_mm: float = 60.0
    bspline_iterations: int = 30


@dataclass
class Registration:
    """The result of :func:`register_followup`.

    ``transform`` maps a baseline LPS point to the follow-up's LPS space (ITK's resampling
    transform with the baseline fixed). ``lung_dice`` is the Dice of the baseline lungs with
    the follow-up lungs mapped onto the baseline grid, ``stages`` the same Dice after each
    stage (``"rigid"``, ``"affine"``, ``"deformable"``), ``seconds`` the time taken.
    """

    transform: sitk.Transform
    baseline_geometry: VolumeGeometry
    lung_dice: float
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    def map_points_lps(self, points_lps: np.ndarray) -> np.ndarray:
        """Map baseline LPS points (n, 3) to the same tissue's place in the follow-up (n, 3)."""
        points = np.atleast_2d(np.asarray(points_lps, dtype=float))
        return np.array([self.transform.TransformPoint(tuple(float(v) for v in p)) for p in points]).reshape(-1, 3)

    def to_baseline(self, array: np.ndarray, geometry: VolumeGeometry, nearest: bool = False) -> np.ndarray:
        """Resample a follow-up array (k, j, i) on ``geometry`` onto the baseline's grid.

        Linear for a CT (outside the follow-up: -1000 HU when ``array`` looks like HU, else 0);
        ``nearest`` for a mask or label map (the dtype is kept).
        """
        check_volume(array, geometry, "array")
        array = np.asarray(array)
        values = array.astype(np.uint8) if array.dtype == bool else array  # SimpleITK has no bool images
        image = sitk.GetImageFromArray(values if nearest else values.astype(np.float32))
        geometry.apply_to_sitk(image)
        reference = sitk.Image(*self.baseline_geometry.size, image.GetPixelID())
        self.baseline_geometry.apply_to_sitk(reference)
        if nearest:
            out = sitk.Resample(image, reference, self.transform, sitk.sitkNearestNeighbor, 0)
            return sitk.GetArrayFromImage(out).astype(array.dtype, copy=False)
        outside = -1000.0 if array.size and np.min(array) < -500 else 0.0
        out = sitk.GetArrayFromImage(sitk.Resample(image, reference, self.transform, sitk.sitkLinear, outside))
        if np.issubdtype(array.dtype, np.integer):
            out = np.rint(out)
        return out.astype(array.dtype, copy=False)

    def write_transform(self, path: str | Path) -> Path:
        """Write the transform as an ITK transform file (``.h5`` or ``.tfm``) for Slicer.

        Slicer reads it into a transform node whose "transform from parent" is this transform
        (both are resampling transforms in LPS; Slicer converts to RAS on reading). Putting the
        follow-up volume under that node shows it aligned on the baseline.
        """
        path = Path(path)
        sitk.WriteTransform(self.transform, str(path))
        return path


Progress = Callable[[str], None]


def register_followup(baseline: CTVolume, followup: CTVolume, baseline_lungs: np.ndarray,
                      followup_lungs: np.ndarray, deformable: bool = True, progress: Progress | None = None,
                      params: RegistrationParameters | None = None) -> Registration:
    """Register a follow-up CT to its baseline on the lungs: rigid, affine, then B-spline.

    Parameters
    ----------
    baseline, followup : CTVolume
        The two CTs in HU, each with its own grid.
    baseline_lungs, followup_lungs : ndarray
        Bool (k, j, i) masks of both lungs on each CT's grid (e.g. the union of
        ``segment_lungs_threshold``'s two lungs).
    deformable : bool
        Add the B-spline stage (breathing); otherwise stop at the affine.
    progress : callable, optional
        Called with one message (str) as each stage starts.
    params : RegistrationParameters, optional
        ``RegistrationParameters()`` by default.

    Returns
    -------
    Registration
        Its ``transform`` maps baseline LPS points to the follow-up's LPS space.

    Raises
    ------
    ValueError
        If a CT or a mask is not a 3D array on its grid, or a mask is empty.
    InputError
        If registration fails: the lungs overlap by less than :data:`MIN_LUNG_DICE` after it,
        or ITK finds too little overlap to start.

    Examples
    --------
    >>> reg = register_followup(baseline, followup, lungs_0, lungs_1)  # doctest: +SKIP
    >>> reg.lung_dice, reg.map_points_lps([tumor_centre_lps])  # doctest: +SKIP
    """
    params = params or RegistrationParameters()
    progress = progress or (lambda message: None)
    for name, ct, lungs in (("baseline", baseline, baseline_lungs), ("followup", followup, followup_lungs)):
        check_volume(ct.array, ct.geometry, f"the {name} CT")
        check_same_shape(lungs, ct.geometry.shape_kji, f"the {name} lungs")
        if not np.any(lungs):
            raise ValueError(f"the {name} lungs mask is empty")
    t0 = time.perf_counter()
    progress("preparing the CTs for registration")
    fixed, fixed_lungs = _working_images(baseline, baseline_lungs, params)
    moving, moving_lungs = _working_images(followup, followup_lungs, params)
    dice = _DiceScorer(baseline_lungs, baseline.geometry, followup_lungs, followup.geometry)
    try:
        transform, stages = _stages(fixed, moving, fixed_lungs, moving_lungs, dice, deformable, progress, params)
    except RuntimeError as exc:  # ITK's own refusals, e.g. "All samples map outside moving image buffer"
        reason = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise InputError(f"registration failed: {reason[-1] if reason else 'ITK error'}") from None
    lung_dice = stages["deformable"] if isinstance(transform, sitk.CompositeTransform) else stages["affine"]
    if lung_dice < MIN_LUNG_DICE:
        raise InputError(f"registration failed: the lungs overlap only {lung_dice:.2f} Dice after registration "
                         f"(< {MIN_LUNG_DICE})")
    return Registration(transform=transform, baseline_geometry=baseline.geometry, lung_dice=float(lung_dice),
                        seconds=time.perf_counter() - t0, stages=stages)


def _stages(fixed: sitk.Image, moving: sitk.Image, fixed_lungs: sitk.Image, moving_lungs: sitk.Image,
            dice: "_DiceScorer", deformable: bool, progress: Progress,
            params: RegistrationParameters) -> tuple[sitk.Transform, dict[str, float]]:
    """Rigid, affine and (with ``deformable``) B-spline; the transform kept and each stage's lung Dice."""
    fixed_mask = _dilated(fixed_lungs, params.mask_margin_mm)
    moving_mask = _dilated(moving_lungs, params.mask_margin_mm)
    stages: dict[str, float] = {}
    progress("registering the follow-up to the baseline: rigid")
    rigid = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        fixed_lungs, moving_lungs, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS))
    rigid = _run(fixed, moving, fixed_mask, moving_mask, rigid, params, params.rigid_iterations)
    stages["rigid"] = dice(rigid)

    progress("registering the follow-up to the baseline: affine")
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    affine = _run(fixed, moving, fixed_mask, moving_mask, affine, params, params.affine_iterations)
    stages["affine"] = dice(affine)
    # a coarse B-spline moves the lungs by at most a few per cent of Dice: it cannot rescue this
    if not deformable or stages["affine"] < MIN_LUNG_DICE - HOPELESS_MARGIN:
        return affine, stages
    progress("registering the follow-up to the baseline: deformable (B-spline)")
    composite = _bspline_stage(fixed, moving, fixed_mask, moving_mask, affine, params)
    stages["deformable"] = dice(composite)
    # breathing is what the B-spline is for; keep it unless it clearly worsened the lungs' overlap
    return (composite if stages["deformable"] >= stages["affine"] - 0.02 else affine), stages


def _working_images(ct: CTVolume, lungs: np.ndarray, params: RegistrationParameters) -> tuple[sitk.Image, sitk.Image]:
    """The CT clipped to the lung window and averaged down to about ``spacing_mm``, and its lungs there."""
    lo, hi = params.hu_window
    image = sitk.GetImageFromArray(np.clip(ct.array, lo, hi).astype(np.float32))
    ct.geometry.apply_to_sitk(image)
    mask = sitk.GetImageFromArray(np.asarray(lungs, dtype=np.float32))
    ct.geometry.apply_to_sitk(mask)
    factors = [max(1, int(round(params.spacing_mm / s))) for s in ct.geometry.spacing]
    image = sitk.BinShrink(image, factors)
    mask = sitk.BinShrink(mask, factors) > 0.5
    # rescale to 0-1 so that the optimiser's step sizes do not depend on the window
    image = (image - lo) / (hi - lo)
    return image, sitk.Cast(mask, sitk.sitkUInt8)


def _dilated(mask: sitk.Image, margin_mm: float) -> sitk.Image:
    radius = [max(1, int(math.ceil(margin_mm / s))) for s in mask.GetSpacing()]
    return sitk.BinaryDilate(mask, radius, sitk.sitkBall)


def _method(fixed_mask: sitk.Image, moving_mask: sitk.Image,
            params: RegistrationParameters) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    if params.metric == "meansquares":
        reg.SetMetricAsMeanSquares()
    elif params.metric == "correlation":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.histogram_bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    voxels = max(1, int(sitk.GetArrayViewFromImage(fixed_mask).sum()))
    reg.SetMetricSamplingPercentage(min(1.0, params.samples / voxels), seed=1)  # fixed seed: the same result every run
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetMetricMovingMask(moving_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def _run(fixed, moving, fixed_mask, moving_mask, initial: sitk.Transform, params: RegistrationParameters,
         iterations: int) -> sitk.Transform:
    """One linear stage (rigid or affine), coarse to fine over two levels."""
    reg = _method(fixed_mask, moving_mask, params)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    transform = type(initial)(initial)  # optimised in place: a copy, so the caller's stays as it was
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return transform


def _bspline_stage(fixed, moving, fixed_mask, moving_mask, affine: sitk.Transform,
                   params: RegistrationParameters) -> sitk.CompositeTransform:
    """A B-spline on top of ``affine`` (kept fixed): the returned transform is affine(bspline(x))."""
    # control points over the metric's mask only: its cost grows with their number
    box = sitk.LabelShapeStatisticsImageFilter()
    box.Execute(fixed_mask)
    x, y, z, nx, ny, nz = box.GetBoundingBox(1)
    domain = fixed_mask[x:x + nx, y:y + ny, z:z + nz]
    extent = [sz * sp for sz, sp in zip(domain.GetSize(), domain.GetSpacing())]
    mesh = [max(1, int(round(e / params.bspline_spacing_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(domain, mesh, order=3)
    reg = _method(fixed_mask, moving_mask, params)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=params.bspline_iterations,
                             maximumNumberOfCorrections=5,
                             maximumNumberOfFunctionEvaluations=2 * params.bspline_iterations)
    reg.SetMovingInitialTransform(affine)
    reg.SetInitialTransform(bspline, inPlace=True)
    reg.SetShrinkFactorsPerLevel([1])
    reg.SetSmoothingSigmasPerLevel([0.0])
    reg.Execute(fixed, moving)
    return sitk.CompositeTransform([affine, bspline])


class _DiceScorer:
    """Dice of the baseline lungs with the follow-up lungs mapped through a transform, counted on
    every n-th baseline voxel along each axis (n for about DICE_STEP_MM): exact baseline grid
    points, and fast enough to score every stage on a 512 x 512 CT."""

    def __init__(self, baseline_lungs: np.ndarray, baseline_geometry: VolumeGeometry,
                 followup_lungs: np.ndarray, followup_geometry: VolumeGeometry):
        steps = [max(1, int(round(DICE_STEP_MM / s))) for s in baseline_geometry.spacing]  # (i, j, k)
        self.fixed = np.asarray(baseline_lungs, bool)[::steps[2], ::steps[1], ::steps[0]]
        g = baseline_geometry
        self.reference = sitk.Image(*[int(n) for n in self.fixed.shape[::-1]], sitk.sitkUInt8)
        self.reference.SetSpacing(tuple(float(s * n) for s, n in zip(g.spacing, steps)))
        self.reference.SetOrigin(g.origin)
        self.reference.SetDirection(g.direction)
        self.moving = sitk.GetImageFromArray(np.asarray(followup_lungs, dtype=np.uint8))
        followup_geometry.apply_to_sitk(self.moving)

    def __call__(self, transform: sitk.Transform) -> float:
        mapped = sitk.GetArrayFromImage(sitk.Resample(self.moving, self.reference, transform,
                                                      sitk.sitkNearestNeighbor, 0)) > 0
        total = int(self.fixed.sum()) + int(mapped.sum())
        return 2.0 * float(np.logical_and(self.fixed, mapped).sum()) / total if total else 0.0
