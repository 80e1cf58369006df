"""A stand-in for the panels' child jobs (fine-tuning, follow-up) in the panels' tests: it
'runs' for two polls and ends as told, without a process. The real jobs are tested in
test_finetune.py and test_followup_job.py."""

from __future__ import annotations

from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.session import Outcome


class FakeFolderJob:
    """An ``OutputFolderJob`` that reports ``event`` for two polls, then ``outcome`` (or, when
    cancelled, ``outcome_type(CANCELLED, ...)``). ``started`` collects every job made."""

    def __init__(self, request, outcome, started: list, event: ProgressEvent | None = None,
                 title: str = "the job") -> None:
        self.request, self.outcome, self.event, self.title = request, outcome, event, title
        self._polls, self.cancelled = 0, False
        started.append(self)

    def start(self) -> FakeFolderJob:
        return self

    @property
    def running(self) -> bool:
        return self._polls < 2 and not self.cancelled

    def progress(self) -> ProgressEvent:
        self._polls += 1
        return self.event or ProgressEvent(Step.LUNGS, "working", 0.4)

    def cancel(self) -> None:
        self.cancelled = True

    def finish(self):
        if self.cancelled:
            return type(self.outcome)(Outcome.CANCELLED, f"{self.title} cancelled; nothing was written")
        return self.outcome

    def cleanup(self) -> None:
        pass
