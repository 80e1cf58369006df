"""What the web panel's fine-tuning section does: save the current CT and its corrected tumour
as a case, and adapt a deep tumour model to a folder of such cases in a child process (the
library's FinetuneJob), with progress and Cancel. Not for clinical use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from trame_server.utils.asynchronous import create_task

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.finetune.job import FinetuneJob, FinetuneRequest
from LungTumorReconLib.pipeline.events import ProgressEvent
from LungTumorReconLib.pipeline.session import Outcome
from LungTumorReconWeb.jobs import follow_job
from LungTumorReconWeb.state import FINETUNE_LABELS

if TYPE_CHECKING:
    from LungTumorReconWeb.logic import PanelLogic


class FinetuneLogic:
    """The section's behaviour over the panel's scene; ``job_factory`` makes the job (a test's fake)."""

    def __init__(self, panel: PanelLogic, job_factory: Callable[[FinetuneRequest], FinetuneJob] | None = None) -> None:
        self.panel, self.typed, self.state = panel, panel.typed, panel.state
        self.job_factory = job_factory or FinetuneJob
        self.job = None
        self.state.cases_dir = self.state.cases_dir or str(panel.out_dir / "finetune-cases")
        self.state.finetune_out = self.state.finetune_out or str(panel.out_dir / "finetuned-model")

    def save_case(self) -> None:
        """The CT and its tumour segment, as corrected now, into the cases folder."""
        self.state.error = ""
        try:
            if not str(self.state.cases_dir).strip():
                raise InputError("give the cases folder")
            self.panel.views.end_editing()  # a pending brush stroke belongs to the case
            ct_path, seg_path = self.panel.presenter.save_case_for_finetuning(
                self.panel.volume_node, Path(self.state.cases_dir).expanduser(), self.panel.segmentation_node)
        except LungTumorReconError as exc:
            self.state.error = exc.describe(FINETUNE_LABELS)
            return
        self.state.finetune_message = f"saved {ct_path.name} and {seg_path.name} in {ct_path.parent}"

    def start(self) -> None:
        """Adapt the chosen model to the cases folder (refused at once on bad input)."""
        s = self.state
        if self.job is not None:
            return
        s.error = ""
        try:
            steps = int(float(s.finetune_steps))
            request = FinetuneRequest(model=s.finetune_model, cases_dir=str(Path(s.cases_dir).expanduser()),
                                      out_dir=str(Path(s.finetune_out).expanduser()), steps=steps, device=s.device)
            self.job = self.job_factory(request).start()
        except (ValueError, TypeError):
            s.error = f"{FINETUNE_LABELS['steps']}: {s.finetune_steps!r}: give a positive number of steps"
            return
        except LungTumorReconError as exc:
            s.error = exc.describe(FINETUNE_LABELS)
            return
        s.finetune_busy, s.finetune_progress, s.finetune_message, s.finetune_weights = True, 0, "starting", ""
        create_task(self._follow())

    async def _follow(self) -> None:
        """Poll the child; the UI stays live between polls."""
        outcome, message, error = await follow_job(self.job, self.typed, self._show_progress, FINETUNE_LABELS,
                                                   "fine-tuning")
        weights = str(outcome.weights) if outcome is not None and outcome.status is Outcome.DONE else ""
        self.job = None
        with self.typed.state:
            self.state.finetune_busy, self.state.finetune_progress = False, 100 if weights else 0
            self.state.finetune_message, self.state.finetune_weights = message, weights
            if error:
                self.state.error = error

    def _show_progress(self, event: ProgressEvent) -> None:
        self.state.finetune_progress = round(100 * (event.fraction or 0.0))
        self.state.finetune_message = f"fine-tuning: {event.message}"

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
