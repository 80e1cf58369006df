"""A long tool that writes one output folder, in a child process, for the panels: fine-tuning
and the follow-up. Not for clinical use.

The mechanism is :class:`~LungTumorReconLib.pipeline.job.ChildJob`'s: the request (a dataclass)
goes into the job folder as JSON, ``python -m MODULE FOLDER`` does the work in a process group of
its own, prints ``PROGRESS`` lines and writes ``result.json`` beside the request; Cancel kills
the group. The tool writes its output folder only at its end, into a hidden
``.NAME.partial-*`` folder moved into place (``io.output_folder``), so a cancelled run leaves
nothing: :meth:`OutputFolderJob.cancel` removes the hidden folder this job was writing.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from LungTumorReconLib.pipeline.events import ProgressEvent
from LungTumorReconLib.pipeline.job import ChildJob
from LungTumorReconLib.pipeline.session import Outcome

RESULT_FILE = "result.json"


class OutputFolderJob(ChildJob):
    """One run of a tool that writes ``request.out_dir``: ``start``, ``progress``, ``cancel``, ``finish``.

    A subclass names ``module``, ``process_name``, ``request_file``, ``title`` (the tool in its
    messages) and ``outcome_type`` (a dataclass taking ``status, message, error=...``), and
    implements :meth:`check` and :meth:`done`.

    Parameters
    ----------
    request : dataclass
        The run; it has an ``out_dir``.
    python : str, optional
        The interpreter (inside desktop Slicer, ``PythonSlicer``).
    work_dir : str or Path, optional
        Where the job folder goes (the system's temporary folder by default).
    """

    request_file = "request.json"
    title = "the job"
    outcome_type: type = object

    def __init__(self, request, python: str | None = None, work_dir: str | Path | None = None) -> None:
        self.request = request
        self._started = 0.0
        super().__init__(python, work_dir)

    def check(self) -> None:
        """Refuse, before the child starts, what it would refuse at once (raises LungTumorReconError)."""
        raise NotImplementedError

    def done(self, result: dict):
        """The outcome of a run that finished, from the child's ``result.json``."""
        raise NotImplementedError

    def _write_inputs(self) -> None:
        self._started = time.time()
        (self.folder / self.request_file).write_text(json.dumps(asdict(self.request)), encoding="utf-8")

    def start(self) -> OutputFolderJob:
        """Refuse bad input at once (:meth:`check`), then start the child."""
        try:
            self.check()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        super().start()
        return self

    def progress(self) -> ProgressEvent:
        """The latest progress (never blocks)."""
        return self.poll().event

    def cancel(self) -> None:
        """Stop the child and its processes now; a hidden output folder it was writing is removed."""
        was_running = self.running
        super().cancel()
        if was_running:
            out = Path(self.request.out_dir).absolute()
            for partial in out.parent.glob(f".{out.name}.partial-*"):  # output_folder's hidden folder
                if partial.stat().st_mtime >= self._started - 1.0:  # this job's, not an older run's
                    shutil.rmtree(partial, ignore_errors=True)

    def finish(self):
        """How the run ended, once the child has (an ``outcome_type``); the job folder is removed."""
        if self._process is None or self.running:
            raise RuntimeError(f"{self.title} was not started" if self._process is None else "it is still running")
        try:
            self.poll()
            if self.cancelled:
                return self.outcome_type(Outcome.CANCELLED, f"{self.title} cancelled; nothing was written")
            failure = self.failure
            if failure is not None:
                return self.outcome_type(Outcome.FAILED, f"{self.title} failed", error=failure)
            return self.done(json.loads((self.folder / RESULT_FILE).read_text(encoding="utf-8")))
        finally:
            self.cleanup()
