"""What the web panel's follow-up section does: compare a later CT of the same patient with a
baseline (the CT shown, with its tumour seeds, or another file) in a child process (the library's
FollowupJob), with progress and Cancel; then load both CTs and their segmentations into the scene,
show them side by side and fill the growth table (the library's ResultPresenter.load_followup).
Growth, doubling time, Lung-RADS and RECIST: research results, not for clinical use."""

from __future__ import annotations

import asyncio
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from trame_server.utils.asynchronous import create_task

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.followup.job import FollowupJob, FollowupRequest
from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.mrml.followup_scene import remove_followup_nodes, write_seeds_file, write_volume_file
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.events import ProgressEvent
from LungTumorReconLib.pipeline.session import Outcome
from LungTumorReconWeb.jobs import follow_job
from LungTumorReconWeb.state import FOLLOWUP_LABELS

if TYPE_CHECKING:
    from LungTumorReconWeb.logic import PanelLogic


def _path(text: str) -> str:
    return str(Path(str(text).strip()).expanduser())


class FollowupLogic:
    """The section's behaviour over the panel's scene; ``job_factory`` makes the job (a test's fake)."""

    def __init__(self, panel: PanelLogic, job_factory: Callable[[FollowupRequest], FollowupJob] | None = None) -> None:
        self.panel, self.typed, self.state = panel, panel.typed, panel.state
        self.job_factory = job_factory or FollowupJob
        self.job = self.nodes = None
        self._inputs: tempfile.TemporaryDirectory | None = None  # the files written for the running job
        self._baseline_node = None  # the CT shown, when it is the running job's baseline
        self._loaded: list = []  # the volume nodes this section loaded: the next result replaces them
        self.state.followup_out = self.state.followup_out or str(panel.out_dir / "followup")

    def _dates(self) -> list[str] | None:
        dates = [str(self.state.followup_baseline_date).strip(), str(self.state.followup_date).strip()]
        if not any(dates):
            return None
        if not all(dates):
            raise InputError("give both dates, or none (the DICOM study dates are then used)", option="dates")
        return dates

    def _request(self, folder: str) -> FollowupRequest:
        """The job's request; the CT shown and its seeds are written into ``folder`` for it."""
        s = self.state
        if not str(s.followup_path).strip():
            raise InputError("give the follow-up CT (a DICOM folder or an image file)", option="followup")
        if not str(s.followup_out).strip():
            raise InputError("give the follow-up output folder")
        dates, seeds = self._dates(), None
        if s.followup_baseline_current:
            if self.panel.volume_node is None:
                raise InputError("there is no CT shown to use", option="baseline")
            baseline = write_volume_file(self.panel.volume_node, folder, "baseline")
            seeds = write_seeds_file(self.panel.seeds_node, self.panel.volume_node,
                                     Path(folder) / "baseline-seeds.mrk.json")
        elif str(s.followup_baseline_path).strip():
            baseline = _path(s.followup_baseline_path)
        else:
            raise InputError("give the baseline CT, or use the CT shown", option="baseline")
        return FollowupRequest(str(baseline), _path(s.followup_path), _path(s.followup_out),
                               seeds=str(seeds) if seeds else None, dates=dates,
                               tumor=s.tumor if s.tumor != "none" else None, device=s.device)

    def start(self) -> None:
        """Compare the follow-up with the baseline (refused at once on bad input)."""
        s = self.state
        if self.job is not None:
            return
        s.error = ""
        try:
            self._inputs = tempfile.TemporaryDirectory(prefix="ltr-followup-inputs-")
            request = self._request(self._inputs.name)
            self.job = self.job_factory(request).start()
        except LungTumorReconError as exc:
            self._drop_inputs()
            s.error = exc.describe(FOLLOWUP_LABELS)
            return
        self._baseline_node = self.panel.volume_node if s.followup_baseline_current else None
        s.followup_busy, s.followup_progress, s.followup_message = True, 0, "follow-up: starting"
        create_task(self._follow(request))

    def _drop_inputs(self) -> None:
        if self._inputs is not None:
            self._inputs.cleanup()
            self._inputs = None

    async def _follow(self, request: FollowupRequest) -> None:
        """Poll the child; the UI stays live between polls. On success, show the result."""
        outcome, message, error = await follow_job(self.job, self.typed, self._show_progress, FOLLOWUP_LABELS,
                                                   "follow-up")
        done = outcome is not None and outcome.status is Outcome.DONE
        if done:
            try:
                await self._show(outcome, request)
            except Exception as exc:  # noqa: BLE001 - shown in the panel, which stays usable
                traceback.print_exc()
                done, error = False, f"{type(exc).__name__}: {exc}"
        self.job = None
        self._drop_inputs()
        with self.typed.state:
            self.state.followup_busy, self.state.followup_progress = False, 100 if done else 0
            self.state.followup_message = message
            if error:
                self.state.error = error

    def _show_progress(self, event: ProgressEvent) -> None:
        self.state.followup_progress = round(100 * (event.fraction or 0.0))
        self.state.followup_message = f"follow-up: {event.message}"

    async def _show(self, outcome, request: FollowupRequest) -> None:
        """Both CTs (the files the job read) and their segmentations into the scene, side by side."""
        presenter = self.panel.presenter
        for node in self._loaded:  # the previous follow-up's CTs and what was made for them
            remove_followup_nodes(presenter, node, with_volume=True)
        self._loaded = []
        baseline = self._baseline_node or await self._add_ct(request.baseline, "baseline CT")
        followup = await self._add_ct(request.followup, "follow-up CT")
        self.nodes = presenter.load_followup(outcome.out_dir, baseline, followup)
        self.panel.views.show_followup(self.nodes)
        with self.typed.state:
            self.state.followup_rows = self.nodes.rows
            self.state.followup_recist = "\n".join(filter(None, [self.nodes.recist, self.nodes.new_lesions]))
            self.state.followup_shown = True
            self.state.warnings = [*self.state.warnings, *self.nodes.report["warnings"]]

    async def _add_ct(self, path: str, name: str):
        ct = await asyncio.to_thread(read_ct, path)  # a large CT: not on the event loop
        node = self.panel.scene.add_volume(ct.array, ct.geometry, name=name)
        Scene.mark_dicom_source(node, ct)
        self._loaded.append(node)
        return node

    def toggle_views(self) -> None:
        """Between the two CTs side by side and the panel's own views."""
        if self.nodes is None:
            return
        if self.state.followup_shown:
            self.panel.views.show_main_views()
        else:
            self.panel.views.show_followup(self.nodes)
        self.state.followup_shown = not self.state.followup_shown

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
