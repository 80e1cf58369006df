"""Fine-tuning in a child process, with progress and Cancel, for the panels.

The same mechanism as the pipeline's (:class:`~LungTumorReconLib.pipeline.folder_job.OutputFolderJob`): the
request is written as JSON into a job folder, ``python -m LungTumorReconLib.finetune.job
FOLDER`` runs :func:`~LungTumorReconLib.finetune.training.finetune` in a process group of its
own and prints ``PROGRESS`` lines, and Cancel kills the group. The child writes the output
folder only at its end, into a hidden folder moved into place, so a cancelled run leaves
nothing (a hidden folder it was writing at that moment is removed by :meth:`FinetuneJob.cancel`).

Example (what a panel's timer does, as a script)::

    job = FinetuneJob(FinetuneRequest("r3d-dense-unet", "cases", "adapted")).start()
    job.wait()
    outcome = job.finish()
    print(outcome.message)  # "fine-tuning done: use --tumor r3d-dense-unet --weights adapted/model.safetensors"
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from LungTumorReconLib.errors import LungTumorReconError
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.folder_job import RESULT_FILE, OutputFolderJob
from LungTumorReconLib.pipeline.job import print_progress, run_child
from LungTumorReconLib.pipeline.session import Outcome

REQUEST_FILE = "finetune.json"
MODULE = "LungTumorReconLib.finetune.job"


@dataclass
class FinetuneRequest:
    """What to fine-tune, on which cases, into which folder (see ``finetune``'s parameters)."""

    model: str
    cases_dir: str
    out_dir: str
    steps: int = 200
    max_minutes: float | None = None
    overwrite: bool = False
    device: str = "cpu"
    validation: str = "auto"


@dataclass
class FinetuneOutcome:
    """How a fine-tuning job ended: ``message`` is the status line; on success ``weights`` is the
    file to give as ``--weights`` with ``method``, and ``summary`` model.json's contents."""

    status: Outcome
    message: str
    error: LungTumorReconError | None = None
    weights: Path | None = None
    method: str | None = None
    summary: dict | None = None


class FinetuneJob(OutputFolderJob):
    """One fine-tuning run in a child process (see :class:`OutputFolderJob`): ``start``,
    ``progress``, ``cancel``, ``finish`` (a :class:`FinetuneOutcome`)."""

    module = MODULE
    process_name = "the fine-tuning process"
    request_file = REQUEST_FILE
    title = "fine-tuning"
    outcome_type = FinetuneOutcome

    def check(self) -> None:
        """Refuse bad input at once (:func:`~LungTumorReconLib.finetune.training.check_inputs`)."""
        from LungTumorReconLib.finetune.training import check_inputs

        r = self.request
        check_inputs(r.model, r.cases_dir, r.out_dir, r.steps, r.max_minutes, r.overwrite)

    def done(self, result: dict) -> FinetuneOutcome:
        weights, method = Path(result["weights"]), result["summary"]["tumor_method"]
        dice = result["summary"]["validation"]
        message = (f"fine-tuning done (validation Dice {dice['dice_before']:.3f} before, {dice['dice_after']:.3f} "
                   f"after): use the tumour method {method} with the weights file {weights}")
        return FinetuneOutcome(Outcome.DONE, message, weights=weights, method=method, summary=result["summary"])


def run_finetune_job(folder: Path) -> None:
    """The child's work: the request in ``folder``, progress on stdout, the result beside it."""
    from LungTumorReconLib.finetune.training import finetune

    request = FinetuneRequest(**json.loads((folder / REQUEST_FILE).read_text(encoding="utf-8")))

    def progress(event: ProgressEvent) -> None:
        print_progress(event.fraction or 0.0, event.step, event.message)

    result = finetune(request.model, request.cases_dir, request.out_dir, steps=request.steps,
                      max_minutes=request.max_minutes, validation=request.validation, progress=progress,
                      overwrite=request.overwrite, device=request.device)
    done = {"weights": str(result.weights.resolve()), "summary": result.summary}
    (folder / RESULT_FILE).write_text(json.dumps(done), encoding="utf-8")
    print_progress(1.0, Step.DONE, "done")


def main(argv: list[str] | None = None) -> int:
    return run_child(sys.argv[1:] if argv is None else argv, MODULE, REQUEST_FILE, run_finetune_job)


if __name__ == "__main__":
    sys.exit(main())
