"""What each button of a panel runs: the stages, the inputs each starts from, the segments
its result replaces, and the share of a run each step takes (for the progress bar)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed
from LungTumorReconLib.lungs.correction import LungCorrection
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.events import Step
from LungTumorReconLib.pipeline.options import PipelineOptions

_LUNGS = (RIGHT_LUNG, LEFT_LUNG)


class Stage(str, Enum):
    """A panel's buttons: every stage, or one of them, or re-propagating one corrected lung."""

    ALL = "all"
    LUNGS = "lungs"
    TUMOR = "tumor"
    RECON = "recon"
    REPROPAGATE = "repropagate"


STAGES = tuple(s.value for s in Stage)


def as_stage(stage: str | Stage) -> Stage:
    """``stage`` as a :class:`Stage`; an unknown name is refused in one line."""
    try:
        return Stage(stage)
    except ValueError:
        raise InputError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})") from None


@dataclass
class JobInputs:
    """What the front end hands over: the scene's CT, seeds and any segments the user has."""

    ct: CTVolume
    seeds: list[Seed]
    options: PipelineOptions
    lungs: dict[str, np.ndarray] | None = None  # start from these lungs (the scene's), not a lung method
    tumor_mask: np.ndarray | None = None  # start from this tumour (the scene's), not a tumour method
    correction: LungCorrection | None = None  # re-propagate one lung from one corrected slice


def plan_stage(
    stage: str | Stage,
    ct: CTVolume,
    seeds: list[Seed],
    options: PipelineOptions,
    segments: dict[str, np.ndarray] | None = None,
    correction: LungCorrection | None = None,
) -> tuple[JobInputs, list[str]]:
    """What one button of a panel runs, and which segments its result replaces.

    ``segments`` are the ones the user has now (the scene's, perhaps corrected by hand):
    "all" ignores them; "tumor" starts from their lungs; "recon" from their tumour;
    "repropagate" re-propagates ``correction.lung`` from its corrected slice and replaces
    only that lung.
    """
    stage = as_stage(stage).value
    segments = segments or {}
    lungs = {n: m for n, m in segments.items() if n in _LUNGS and m.any()} or None
    tumor = segments.get(TUMOR)
    tumor = tumor if tumor is not None and tumor.any() else None
    if stage == "all":
        return JobInputs(ct, seeds, options), [*_LUNGS, TUMOR]
    if stage == "lungs":
        return JobInputs(ct, seeds, replace(options, tumor="none", recon="none")), list(_LUNGS)
    if stage == "tumor":
        lung_method = options.lungs if lungs is None else "none"  # no lungs yet: the chosen method finds them
        return (JobInputs(ct, seeds, replace(options, lungs=lung_method, recon="none"), lungs=lungs),
                [TUMOR] if lungs is not None else [*_LUNGS, TUMOR])
    if stage == "recon":
        if tumor is None:
            raise InputError("there is no tumor segment to reconstruct: run the tumour stage or draw one")
        return JobInputs(ct, seeds, replace(options, lungs="none", tumor="none"), lungs=lungs, tumor_mask=tumor), []
    if stage == "repropagate":
        if correction is None or lungs is None or correction.lung not in lungs:
            raise InputError("re-propagation needs the lungs and a corrected slice of one of them")
        return (JobInputs(ct, seeds, replace(options, lungs="none", tumor="none", recon="none"), lungs=lungs,
                          tumor_mask=tumor, correction=correction), [correction.lung])
    raise AssertionError(stage)


def step_weights(options: PipelineOptions, has_lungs: bool, has_tumor: bool,
                 has_correction: bool = False) -> dict[Step, float]:
    """The rough relative cost of each step that will run, in run order (the lungs by the snake
    or a network, and a deep tumour model, take longest; GK is quick)."""
    weights: dict[Step, float] = {}
    if not has_lungs and options.lungs != "none":
        weights[Step.LUNGS] = 1.0 if options.lungs == "threshold" else 6.0
    if has_correction:
        weights[Step.CORRECTION] = 4.0
    tumor = options.tumor or methods.DEFAULT_TUMOR
    if not has_tumor and tumor != "none":
        weights[Step.TUMOR] = 6.0 if tumor in methods.DEEP_TUMOR_METHODS else 1.5
    if options.recon != "none":
        weights[Step.RECON] = 2.0 if options.recon == "gan" else 1.0
    return weights


def fraction_at_start(step: Step, weights: dict[Step, float]) -> float | None:
    """The share of the run done when ``step`` starts (None: a step that is not weighed)."""
    if step not in weights:
        return None
    total = sum(weights.values()) or 1.0
    done = 0.0
    for name, weight in weights.items():
        if name == step:
            return done / total
        done += weight
    return None
