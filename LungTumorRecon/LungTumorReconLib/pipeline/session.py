"""One stage-running session for every interactive front end (the Slicer panel, the web app).

A front end reads its scene into :class:`StageInputs`, fills :class:`PipelineOptions` and
calls :meth:`StageSession.start`; it polls for :class:`ProgressEvent`\\ s while the stage runs
in a child process (:class:`~LungTumorReconLib.pipeline.job.PipelineJob`), and
:meth:`StageSession.finish` gives a :class:`StageOutcome`: done with a :class:`SceneUpdate`
for the scene layer to apply, cancelled, or failed with the error as data. Nothing here
imports Qt, trame or ``slicer``.

Example (what a script or a test does instead of a panel's timer)::

    session = StageSession()
    session.start(Stage.ALL, StageInputs(ct, seeds), PipelineOptions(lungs="threshold"))
    session.wait()
    outcome = session.finish()
    assert outcome.status is Outcome.DONE, outcome.message
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.lungs.correction import LungCorrection
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.job import PipelineJob
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.stages import Stage, as_stage, plan_stage

LISTED_CANDIDATES = 10  # the automatic tumour candidates a panel lists, best first


@dataclass
class StageInputs:
    """What the scene holds when a stage starts: the CT, the placed seeds and the user's
    segments as they are now (edits included; empty for Run all)."""

    ct: CTVolume
    seeds: list[Seed] = field(default_factory=list)
    segments: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """An automatic tumour candidate, as a panel lists it."""

    rank: int
    volume_ml: float
    score: float
    centroid_lps: tuple[float, float, float]

    @property
    def centroid_ras(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in lps_to_ras(np.asarray(self.centroid_lps)))


@dataclass
class SceneUpdate:
    """A finished stage's result and what of the scene it replaces."""

    result: object  # PipelineResult
    replaced_segments: list[str]
    candidates: list[Candidate] | None  # None: the stage ran no tumour method, keep the listed ones
    warnings: list[str]
    remeasures_tumor: bool = False  # measured the tumour segment as it is now (perhaps edited by hand)


class Outcome(str, Enum):
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass
class StageOutcome:
    """How a stage ended. ``message`` is the status line; ``error`` says what failed (its
    ``describe(names)`` phrases the option as the front end names it)."""

    stage: Stage
    status: Outcome
    message: str
    error: LungTumorReconError | None = None
    update: SceneUpdate | None = None


class StageRunner(Protocol):
    """What a panel needs of a session; a test gives a panel a fake one."""

    @property
    def busy(self) -> bool: ...

    def start(self, stage: Stage | str, inputs: StageInputs, options: PipelineOptions,
              correction_lung: str | None = None, correction_slice: int | None = None) -> None: ...

    def poll(self) -> ProgressEvent: ...

    @property
    def running(self) -> bool: ...

    def cancel(self) -> None: ...

    def finish(self) -> StageOutcome: ...

    def cleanup(self) -> None: ...


def correction_from_segments(segments: dict[str, np.ndarray], lung: str | None, k: int | None) -> LungCorrection:
    """The user's contour of ``lung`` on axial slice ``k``, to re-propagate from."""
    mask = segments.get(lung or "")
    k = -1 if k is None else int(k)
    if mask is None or not 0 <= k < mask.shape[0] or not mask[k].any():
        raise InputError(f"the {lung} has no contour on slice {k + 1} to re-propagate from")
    return LungCorrection(lung=lung, k=k, mask=mask[k])


def candidates_of(result) -> list[Candidate]:
    return [Candidate(rank=rank, volume_ml=float(c["volume_ml"]), score=float(c["score"]),
                      centroid_lps=tuple(float(v) for v in c["centroid_lps"]))
            for rank, c in enumerate(result.candidates[:LISTED_CANDIDATES], start=1)]


class StageSession:
    """Runs one stage at a time in a child process.

    Args:
        python: the interpreter the child runs with (this one by default; desktop Slicer's
            module passes ``PythonSlicer``).
    """

    def __init__(self, python: str | None = None) -> None:
        self.python = python
        self.stage: Stage | None = None
        self._job = None
        self._replaced: list[str] = []

    @property
    def busy(self) -> bool:
        """A stage was started and not yet finished."""
        return self._job is not None

    @property
    def running(self) -> bool:
        """The child is still computing."""
        return self._job is not None and self._job.running

    def start(self, stage: Stage | str, inputs: StageInputs, options: PipelineOptions,
              correction_lung: str | None = None, correction_slice: int | None = None) -> None:
        """Start ``stage``; a refused choice raises before any work, in one line.

        Unknown or unbuilt methods are refused here; weights and devices are checked by the
        child, so the front end's process never imports torch (beside trame-slicer's VTK, or
        in Slicer's GUI process, just to check)."""
        if self.busy:
            raise InputError("a stage is already running")
        stage = as_stage(stage)
        for name in ("lungs", "tumor", "recon"):
            method = getattr(options, name)
            if method is not None:
                methods.check_available(name, method)
        segments = {} if stage is Stage.ALL else inputs.segments
        correction = None
        if stage is Stage.REPROPAGATE:
            correction = correction_from_segments(segments, correction_lung, correction_slice)
        job_inputs, self._replaced = plan_stage(stage, inputs.ct, inputs.seeds, options, segments, correction)
        self._job = PipelineJob(job_inputs, python=self.python).start()
        self.stage = stage

    def poll(self) -> ProgressEvent:
        """The latest progress (never blocks)."""
        if self._job is None:
            return ProgressEvent(Step.DONE, "idle", 1.0)
        return self._job.poll().event

    def wait(self, timeout: float | None = None) -> None:
        """Block until the child ends (scripts and tests; a panel polls instead)."""
        if self._job is not None:
            self._job.wait(timeout)

    def cancel(self) -> None:
        """Stop the child and everything it started, now; the scene stays as it was."""
        if self._job is not None:
            self._job.cancel()

    def finish(self) -> StageOutcome:
        """How the stage ended, once the child has; the job's folder is removed."""
        job, stage = self._job, self.stage
        if job is None or stage is None:
            raise RuntimeError("no stage was started")
        if job.running:
            raise RuntimeError("the stage is still running")
        title = methods.stage_title(stage)
        try:
            job.poll()
            if job.cancelled:
                return StageOutcome(stage, Outcome.CANCELLED, f"{title}: cancelled; the scene is unchanged")
            failure = job.failure
            if failure is not None:
                return StageOutcome(stage, Outcome.FAILED, f"{title}: failed", error=failure)
            result = job.result()
            finds_tumor = stage in (Stage.ALL, Stage.TUMOR)
            update = SceneUpdate(result=result, replaced_segments=list(self._replaced),
                                 candidates=candidates_of(result) if finds_tumor else None,
                                 warnings=list(result.warnings), remeasures_tumor=stage is Stage.RECON)
            return StageOutcome(stage, Outcome.DONE, f"{title}: done", update=update)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        """Kill a running child and remove its folder (a front end closing)."""
        if self._job is not None:
            self._job.cleanup()
        self._job, self.stage = None, None
