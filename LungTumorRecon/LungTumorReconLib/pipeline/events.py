"""Progress as data: each step of a run reports a typed event, never a phrase to be parsed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable


class Step(str, Enum):
    """The steps of a run, in the order they run."""

    READ = "read"
    LUNGS = "lungs"
    CORRECTION = "correction"
    TUMOR = "tumor"
    RECON = "recon"
    WRITE = "write"
    DONE = "done"


@dataclass(frozen=True)
class ProgressEvent:
    """One step's progress.

    Args:
        step: the step running.
        message: what it does, for people (never parsed).
        fraction: of the whole run, 0-1, when the runner knows it (a job does; the library's
            functions leave it None).
    """

    step: Step
    message: str
    fraction: float | None = None


Progress = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default listener."""
