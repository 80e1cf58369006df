"""What the web panel does: seeds, stages through the library's StageSession, results into
the typed state, candidates, the heterogeneity map and the scene bundle. The trame-slicer
views and editor are reached through :class:`Views` (the app); nothing here computes."""

from __future__ import annotations

import asyncio
import os
import tempfile
import traceback
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import numpy as np
from trame_server.utils.asynchronous import create_task
from trame_server.utils.typed_state import TypedState

from LungTumorReconLib.coordinates import ras_to_lps
from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import TUMOR, Seed
from LungTumorReconLib.mrml.presenter import ResultPresenter
from LungTumorReconLib.mrml.roles import Role
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.methods import DEFAULT_TUMOR, stage_title
from LungTumorReconLib.pipeline.session import Candidate, Outcome, StageRunner, StageSession
from LungTumorReconWeb.dicom import DicomLogic
from LungTumorReconWeb.finetune import FinetuneLogic
from LungTumorReconWeb.followup import FollowupLogic
from LungTumorReconWeb.state import CONTROL_LABELS, PanelState, options_from_state

POLL_S = 0.25
DOWNLOAD_ROUTE = "download"  # GET download/NAME.mrb: a bundle this session saved
# The tumour table has a row per measurement and a column per tumour: eleven measurements side
# by side do not fit the panel.
TUMOR_MEASURES = [("volume_ml", "volume (mL)"), ("longest_axial_diameter_mm", "axial diameter (mm)"),
                  ("short_axis_mm", "short axis (mm)"), ("max_3d_diameter_mm", "3D diameter (mm)"),
                  ("sphericity", "sphericity"), ("mean_hu", "mean HU"), ("std_hu", "SD HU"),
                  ("mean_diameter_mm", "mean diameter (mm)"), ("nodule_type", "nodule type"),
                  ("solid_mean_diameter_mm", "solid mean diameter (mm)"),
                  ("lung_rads_category", "Lung-RADS v2022 (suggestion, not for clinical use)")]


def is_bundle_name(name: str) -> bool:
    """A bare file name ending in .mrb, not hidden: what the output folder may hold for the user."""
    return bool(name) and Path(name).name == name and not name.startswith(".") and name.lower().endswith(".mrb")


class Views(Protocol):
    """What the logic asks of the app's views and segment editor."""

    def end_editing(self) -> None: ...
    def editor_undo_step(self): ...
    def refresh_editor(self, segmentation_node, preferred_segment: str) -> None: ...
    def fit_3d_views(self) -> None: ...
    def jump_to(self, ras) -> None: ...
    def show_foreground(self, volume_node) -> None: ...
    def place_point(self, markups_node) -> None: ...
    def show_followup(self, nodes) -> None: ...  # a loaded follow-up's two CTs side by side
    def show_main_views(self) -> None: ...


def _number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _ras_text(ras) -> str:
    return ", ".join(f"{v:.1f}" for v in ras)


def _slice_number(geometry, ras) -> int:
    """The axial slice a point lies on, counted from 1 as the panel's slice numbers are."""
    return int(geometry.nearest_kji(ras_to_lps(np.asarray(ras, dtype=float)))[0]) + 1


# What the default tumour method's volume includes (measured on the bundled sample).
RIM_NOTE = ("The volume keeps the partial-volume rim (GK, the default): about +25% against a tight manual "
            "outline on the sample.")


class PanelLogic:
    """The panel's behaviour over one scene and one CT."""

    def __init__(self, typed: TypedState[PanelState], scene: Scene, views: Views, out_dir: Path,
                 session: StageRunner | None = None) -> None:
        self.typed, self.state = typed, typed.data
        self.scene, self.presenter, self.views = scene, ResultPresenter(scene), views
        self.out_dir = Path(out_dir)
        self.session = session or StageSession()
        self.volume_node = self.segmentation_node = self.seeds_node = None
        self._placing_label: str | None = None
        self._candidates: list[Candidate] = []
        self._tumor_method = ""  # the method of the tumour segment shown
        self._table_update: asyncio.Task | None = None
        self.finetune = FinetuneLogic(self)
        self.dicom = DicomLogic(self)
        self.followup = FollowupLogic(self)

    # -- input -----------------------------------------------------------------------------------
    def load(self, ct: CTVolume, seeds: list[Seed]) -> None:
        """Show a CT and seeds, with an empty segmentation for the editor."""
        name = Path(ct.path).name.split(".")[0] if ct.path else "CT"
        self.volume_node = self.scene.add_volume(ct.array, ct.geometry, name=name or "CT")
        Scene.mark_dicom_source(self.volume_node, ct)  # for Export DICOM
        self.segmentation_node = self.presenter.tag(
            self.scene.set_segmentation({}, ct.geometry, reference_volume=self.volume_node),
            Role.SEGMENTATION, self.volume_node)
        self.seeds_node = self.presenter.tag(self.scene.add_seeds(seeds, name="Seeds"), Role.SEEDS, self.volume_node)
        self.seeds_node.AddObserver(self.seeds_node.PointPositionDefinedEvent, self._on_point_placed)
        self.update_seeds()

    def forget_case(self) -> None:
        """The scene was emptied for another case: nothing of the last one is kept."""
        self.volume_node = self.segmentation_node = self.seeds_node = None
        self._candidates, self._placing_label = [], None
        self.followup.nodes = None

    def place_seed(self, label: str) -> None:
        """Slicer's place mode: the next click in a view adds a point with this label."""
        self._placing_label = label
        self.state.placing = label
        self.views.place_point(self.seeds_node)

    def _on_point_placed(self, node, _event) -> None:
        n = node.GetNumberOfControlPoints()
        if n and self._placing_label:
            node.SetNthControlPointLabel(n - 1, self._placing_label)
        self._placing_label = None
        with self.typed.state:
            self.state.placing = ""
        self.update_seeds()

    def clear_seeds(self) -> None:
        self.seeds_node.RemoveAllControlPoints()
        self.update_seeds()

    def update_seeds(self) -> None:
        rows, geometry = [], Scene.volume_geometry(self.volume_node)
        for i in range(self.seeds_node.GetNumberOfControlPoints()):
            ras = [0.0, 0.0, 0.0]
            self.seeds_node.GetNthControlPointPositionWorld(i, ras)
            rows.append({"label": self.seeds_node.GetNthControlPointLabel(i), "ras": _ras_text(ras),
                         "slice": _slice_number(geometry, ras)})
        with self.typed.state:
            self.state.seeds = rows

    # -- stages ------------------------------------------------------------------------------------
    def start_stage(self, stage: str) -> None:
        if self.session.busy or self.volume_node is None:
            return
        self.state.error = ""
        self.views.end_editing()
        try:
            inputs = self.presenter.stage_inputs(stage, self.volume_node, self.seeds_node, self.segmentation_node)
            self.session.start(stage, inputs, options_from_state(self.state), correction_lung=self.state.correct_lung,
                               correction_slice=int(self.state.axial_k))
        except LungTumorReconError as exc:
            self.state.error = exc.describe(CONTROL_LABELS)
            return
        self.state.busy, self.state.progress = True, 0
        self.state.message, self.state.warnings = f"{stage_title(stage)}: starting", []
        if stage in ("all", "tumor"):
            self._tumor_method = self.state.tumor
        create_task(self._follow())

    async def _follow(self) -> None:
        """Poll the child process; the UI stays live between polls."""
        title = stage_title(self.session.stage)
        message, error, done = "", "", False
        try:
            while self.session.running:
                await asyncio.sleep(POLL_S)
                event = self.session.poll()
                with self.typed.state:
                    self.state.progress = round(100 * (event.fraction or 0.0))
                    self.state.message = f"{title}: {event.message}"
            outcome = self.session.finish()
            message = outcome.message
            if outcome.status is Outcome.FAILED:
                error = outcome.error.describe(CONTROL_LABELS)
            elif outcome.status is Outcome.DONE:
                done = True
                # one step on the editor's undo stack: Undo brings back the segments as they were
                # before the stage, as after a brush stroke
                with self.views.editor_undo_step():
                    self.presenter.apply_update(outcome.update, self.volume_node, self.segmentation_node)
                self.views.refresh_editor(self.segmentation_node, self.state.correct_lung)
                if outcome.update.result.surface_lps is not None:
                    self.views.fit_3d_views()
                self._show_results(outcome.update)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, which stays usable
            traceback.print_exc()  # the server's log keeps the detail
            message, error = f"{title}: failed", f"{type(exc).__name__}: {exc}"
            done = False
            self.session.cleanup()
        with self.typed.state:
            self.state.busy = False
            self.state.progress = 100 if done else 0
            self.state.message, self.state.error = message, error

    def cancel(self) -> None:
        self.session.cancel()

    # -- results -----------------------------------------------------------------------------------
    def on_segmentation_edited(self, *_) -> None:
        """Edits change the volumes table too (debounced: a brush stroke sends many events)."""
        if not self.session.busy and self.segmentation_node is not None and self._table_update is None:
            self._table_update = create_task(self._update_volumes_table())

    async def _update_volumes_table(self) -> None:
        await asyncio.sleep(0.5)
        self._table_update = None
        if self.session.busy:
            return
        self.presenter.refresh_segment_volumes(self.segmentation_node, self.volume_node)
        with self.typed.state:
            self.state.volume_rows = self._volume_rows()

    def _volume_rows(self) -> list[dict]:
        table = self.presenter.node_for(Role.VOLUMES_TABLE, self.volume_node)
        return [{"segment": r["segment"], "volume_ml": _number(r["volume_ml"]), "voxels": str(r["voxels"])}
                for r in (Scene.table_rows(table) if table else [])]

    def _show_results(self, update) -> None:
        tumors = self.presenter.node_for(Role.TUMORS_TABLE, self.volume_node)
        model = self.presenter.node_for(Role.TUMOR_MODEL, self.volume_node)
        per_tumor = Scene.table_rows(tumors) if tumors else []
        if update.candidates is not None:
            self._candidates = update.candidates
        with self.typed.state:
            self.state.volume_rows = self._volume_rows()
            self.state.tumor_headers = [{"title": "measurement", "key": "measure"}] + [
                {"title": str(r.get("tumor", i)), "key": f"t{i}"} for i, r in enumerate(per_tumor)]
            self.state.tumor_rows = [
                {"measure": title, **{f"t{i}": _number(r.get(key, "")) for i, r in enumerate(per_tumor)}}
                for key, title in TUMOR_MEASURES] if per_tumor else []
            self.state.model = (f"{model.GetName()} ({model.GetPolyData().GetNumberOfPoints()} points)"
                                if model is not None and model.GetPolyData() is not None else "")
            geometry = Scene.volume_geometry(self.volume_node)
            self.state.candidates = [{"rank": c.rank, "volume_ml": f"{c.volume_ml:.2f}", "score": f"{c.score:.2f}",
                                      "ras": _ras_text(c.centroid_ras), "slice": _slice_number(geometry, c.centroid_ras)}
                                     for c in self._candidates]
            self.state.volume_note = RIM_NOTE if per_tumor and self._tumor_method == DEFAULT_TUMOR else ""
            self.state.warnings = list(update.warnings)
            self.state.has_heterogeneity = self.presenter.node_for(Role.HETEROGENEITY, self.volume_node) is not None
        self.show_heterogeneity(self.state.show_heterogeneity)  # a new map, or none, replaced the old

    # -- candidates and the heterogeneity map ------------------------------------------------------
    def show_candidate(self, index: int) -> None:
        if 0 <= index < len(self._candidates):
            self.views.jump_to(self._candidates[index].centroid_ras)

    def seed_candidate(self, index: int) -> None:
        """A tumour seed at the candidate's centre: the next tumour stage segments it."""
        if self.session.busy or not 0 <= index < len(self._candidates):
            return
        seed = Seed(label=TUMOR, lps=self._candidates[index].centroid_lps)
        self.views.jump_to(Scene.add_seed(self.seeds_node, seed, self.volume_node))
        self.update_seeds()

    def show_heterogeneity(self, show: bool) -> None:
        node = self.presenter.node_for(Role.HETEROGENEITY, self.volume_node) if show else None
        self.views.show_foreground(node)

    # -- export ------------------------------------------------------------------------------------
    def save_mrb(self) -> None:
        """The whole scene as a Slicer bundle in the output folder, written atomically."""
        name = str(self.state.mrb_name).strip()
        try:
            if not is_bundle_name(name):
                raise InputError(f"{name!r}: give a file name ending in .mrb (it is saved in {self.out_dir})")
            self.out_dir.mkdir(parents=True, exist_ok=True)
            target = self.out_dir / name
            fd, partial = tempfile.mkstemp(prefix=f".{name}.partial-", suffix=".mrb", dir=self.out_dir)
            os.close(fd)
            self.views.end_editing()
            try:
                self.presenter.refresh_segment_volumes(self.segmentation_node, self.volume_node)
                self.scene.save_mrb(partial)
                os.replace(partial, target)
            finally:
                Path(partial).unlink(missing_ok=True)
        except (LungTumorReconError, OSError) as exc:
            self.state.error = exc.describe(CONTROL_LABELS) if isinstance(exc, LungTumorReconError) else str(exc)
            return
        self.state.volume_rows = self._volume_rows()
        self.state.saved = f"saved {target.resolve()}"
        self.state.saved_url = f"{DOWNLOAD_ROUTE}/{quote(name)}"

    def saved_file(self, name: str) -> Path | None:
        """A scene bundle this session saved, by its bare name; None for any other name."""
        if not is_bundle_name(name):
            return None
        path = self.out_dir / name
        return path if path.is_file() else None
