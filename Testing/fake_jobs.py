"""Stand-ins for the panels' child jobs in the panels' tests: a folder job (fine-tuning,
follow-up) that 'runs' for two polls and ends as told, without a process; a stage's job that
computes in this process. The real jobs are tested in
test_finetune.py and test_followup_job.py."""

from __future__ import annotations

import contextlib
import io
import json

from LungTumorReconLib.errors import LungTumorReconError
from LungTumorReconLib.pipeline import job
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


class InProcessPipelineJob(job.PipelineJob):
    """A ``PipelineJob`` whose child's work (``run_job`` on the job folder) runs in this process
    when started, so that a panel's test gets the stage's real result at its first poll, without a
    process. Put in place of ``LungTumorReconLib.pipeline.session.PipelineJob``; the session
    around it (StageSession: what a stage replaces, its outcome) is the real one."""

    def start(self) -> InProcessPipelineJob:
        self._write_inputs()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                job.run_job(self.folder)
                self._returncode = 0
            except LungTumorReconError as exc:
                (self.folder / job.ERROR_FILE).write_text(json.dumps(exc.as_dict()), encoding="utf-8")
                self._returncode = 2
        for line in out.getvalue().splitlines():
            self._lines.put(line)
        return self

    @property
    def running(self) -> bool:
        return False

    @property
    def failure(self) -> LungTumorReconError | None:
        if self._returncode == 0:
            return None
        return LungTumorReconError.from_dict(json.loads((self.folder / job.ERROR_FILE).read_text(encoding="utf-8")))
