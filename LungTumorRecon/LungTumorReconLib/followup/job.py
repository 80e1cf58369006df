"""The follow-up in a child process, with progress and Cancel, for the panels. Not for clinical use.

The same mechanism as the pipeline's (:class:`~LungTumorReconLib.pipeline.folder_job.OutputFolderJob`): the
request is written as JSON into a job folder, ``python -m LungTumorReconLib.followup.job FOLDER``
runs :func:`~LungTumorReconLib.followup.pipeline.run_followup` and
:func:`~LungTumorReconLib.followup.output.write_followup` in a process group of its own and
prints ``PROGRESS`` lines, and Cancel kills the group. The output folder is written only at the
end, into a hidden ``.NAME.partial-*`` folder moved into place, so a cancelled run leaves nothing
(a hidden folder it was writing at that moment is removed by Cancel).

Example (what a panel's timer does, as a script)::

    job = FollowupJob(FollowupRequest("baseline.nrrd", "followup.nrrd", "out", seeds="seeds.mrk.json",
                                      dates=["2026-01-01", "2026-04-01"])).start()
    job.wait()
    outcome = job.finish()
    print(outcome.message)  # "follow-up done: .../out", then "tumor 1: 4.56 -> 9.10 mL (+99.6 %), ..." and
                            # "RECIST 1.1: PD (...). Not for clinical use."
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from LungTumorReconLib.errors import InputError, LungTumorReconError, UnavailableError
from LungTumorReconLib.followup.cli import summary_lines
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.folder_job import RESULT_FILE, OutputFolderJob
from LungTumorReconLib.pipeline.job import print_progress, run_child
from LungTumorReconLib.pipeline.session import Outcome

REQUEST_FILE = "followup-request.json"
MODULE = "LungTumorReconLib.followup.job"


@dataclass
class FollowupRequest:
    """What to compare, with which methods, into which folder (``lungtumorrecon followup``'s
    arguments; paths as text so that the request is JSON)."""

    baseline: str
    followup: str
    out_dir: str
    seeds: str | None = None  # baseline markups: a tumor point on each tumour to follow
    baseline_seg: str | None = None  # or the baseline tumours as a segmentation
    dates: list[str] | None = None  # baseline and follow-up, YYYY-MM-DD, instead of the DICOM dates
    tumor: str | None = None  # the tumour method (None: the pipeline's default)
    lungs: str = "threshold"  # FollowupOptions' default (DEFAULT_FOLLOWUP_LUNGS), without importing the pipeline
    device: str = "auto"
    overwrite: bool = False
    deformable: bool = True  # the registration's B-spline stage


@dataclass
class FollowupOutcome:
    """How a follow-up job ended: ``message`` is the status line; on success ``out_dir`` is the
    folder written and ``report`` its ``followup.json`` contents."""

    status: Outcome
    message: str
    error: LungTumorReconError | None = None
    out_dir: Path | None = None
    report: dict | None = None


def check_request(request: FollowupRequest) -> None:
    """Refuse, before any work, what the child would refuse at once: a missing input, an output
    folder that is a file or not empty, bad dates, an unknown method."""
    from LungTumorReconLib.io.output_folder import check_output_dir
    from LungTumorReconLib.pipeline import methods

    for path, option in ((request.baseline, "baseline"), (request.followup, "followup"),
                         (request.seeds, "seeds_path"), (request.baseline_seg, "baseline_seg")):
        if path is not None and not Path(path).exists():
            raise InputError("no such file or folder", path, option=option)
    if request.lungs == "none":
        raise UnavailableError("the follow-up registers the two CTs on their lungs: choose a lung method",
                               option="lungs")
    methods.check_available("lungs", request.lungs)
    if request.tumor is not None:
        methods.check_available("tumor", request.tumor)
    if request.dates is not None:
        try:
            baseline, followup = (datetime.date.fromisoformat(str(d).strip()) for d in request.dates)
        except ValueError:
            raise InputError(f"{' '.join(map(str, request.dates))}: give two dates as YYYY-MM-DD",
                             option="dates") from None
        if followup < baseline:
            raise InputError(f"the follow-up date {followup} is before the baseline date {baseline}", option="dates")
    check_output_dir(request.out_dir, request.overwrite)


class FollowupJob(OutputFolderJob):
    """One follow-up run in a child process (see :class:`OutputFolderJob`): ``start``,
    ``progress``, ``cancel``, ``finish`` (a :class:`FollowupOutcome`)."""

    module = MODULE
    process_name = "the follow-up process"
    request_file = REQUEST_FILE
    title = "follow-up"
    outcome_type = FollowupOutcome

    def check(self) -> None:
        check_request(self.request)

    def done(self, result: dict) -> FollowupOutcome:
        report = result["report"]
        message = "\n".join([f"follow-up done: {result['out_dir']}", *summary_lines(report)])
        return FollowupOutcome(Outcome.DONE, message, out_dir=Path(result["out_dir"]), report=report)


def run_followup_job(folder: Path) -> None:
    """The child's work: the request in ``folder``, progress on stdout, the result beside it."""
    from LungTumorReconLib.followup.output import write_followup
    from LungTumorReconLib.followup.pipeline import FollowupOptions, run_followup

    request = FollowupRequest(**json.loads((folder / REQUEST_FILE).read_text(encoding="utf-8")))
    fraction = [0.0]

    def progress(event: ProgressEvent) -> None:
        # the pipeline's events carry no fraction: creep towards the end, step by step
        fraction[0] = event.fraction if event.fraction is not None else fraction[0] + (0.95 - fraction[0]) * 0.15
        print_progress(fraction[0], event.step, event.message)

    options = FollowupOptions(lungs=request.lungs, tumor=request.tumor, device=request.device,
                              seeds_path=Path(request.seeds) if request.seeds else None,
                              baseline_seg=Path(request.baseline_seg) if request.baseline_seg else None,
                              dates=tuple(request.dates) if request.dates else None, deformable=request.deformable)
    result = run_followup(request.baseline, request.followup, options, progress)
    out, report = write_followup(result, request.out_dir, request.overwrite, progress)
    done = {"out_dir": str(Path(out).resolve()), "report": report}
    (folder / RESULT_FILE).write_text(json.dumps(done), encoding="utf-8")
    print_progress(1.0, Step.DONE, "done")


def main(argv: list[str] | None = None) -> int:
    return run_child(sys.argv[1:] if argv is None else argv, MODULE, REQUEST_FILE, run_followup_job)


if __name__ == "__main__":
    sys.exit(main())
