"""``lungtumorrecon app``: the LungTumorRecon panel as a web app on Slicer's scene (trame-slicer).

A front end only: the scene is trame-slicer's (real MRML, views rendered offscreen and
streamed as images), every computation runs through :mod:`LungTumorReconLib.pipeline_job` in a
child process (progress, Cancel, a responsive UI), and every scene change goes through
:class:`LungTumorReconLib.scene.Scene`. Not for clinical use.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import traceback
from pathlib import Path

import numpy as np
from trame.app import TrameApp
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic import SegmentEditorLogic
from trame_slicer.app.ui import (
    SegmentEditorToolbarUI,
    SegmentEditorUI,
    SegmentEditorUndoRedoUI,
    ViewerLayout,
)
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer import segmentation as trame_slicer_segmentation
from trame_slicer.segmentation import SegmentationEffect
from trame_slicer.segmentation.segmentation_undo_command import SegmentationLabelMapUndoCommand
from vtkmodules.vtkCommonCore import vtkCommand

from LungTumorReconLib import methods
from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.ct_io import CTVolume
from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.lung_correction import LungCorrection
from LungTumorReconLib.pipeline import PipelineOptions
from LungTumorReconLib.pipeline_job import PipelineJob, plan_stage
from LungTumorReconLib.scene import HETEROGENEITY_VOLUME, Scene
from LungTumorReconLib.seeds_io import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed

TITLE = "LungTumorRecon"
POLL_S = 0.25
_STAGE_TITLES = {"all": "Run all", "lungs": "lungs", "tumor": "tumour", "recon": "3D model",
                 "repropagate": "re-propagation"}
# The tumour table has a row per measurement and a column per tumour: seven measurements side
# by side did not fit the panel.
_TUMOR_MEASURES = [("volume_ml", "volume (mL)"), ("longest_axial_diameter_mm", "axial diameter (mm)"),
                   ("short_axis_mm", "short axis (mm)"), ("max_3d_diameter_mm", "3D diameter (mm)"),
                   ("sphericity", "sphericity"), ("mean_hu", "mean HU"), ("std_hu", "SD HU")]


def _number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


class LungTumorReconWebApp(TrameApp):
    """The panel (seeds, methods, stages with progress and Cancel, results, correction, export)
    beside trame-slicer's views and segment editor."""

    def __init__(self, server=None, ct: CTVolume | None = None, seeds: list[Seed] | None = None,
                 out_dir: str | Path = ".") -> None:
        super().__init__(server)
        self.out_dir = Path(out_dir)
        self.server.enable_module(trame_slicer_module)
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.seg_logic = SegmentEditorLogic(self.server, self.slicer)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layout_manager.set_layout("Axial Primary")
        self.scene = Scene.attach(self.slicer.scene, self.slicer.app_logic)
        self.volume_node = None
        self.segmentation_node = None
        self.seeds_node = None
        self.job: PipelineJob | None = None
        self._placing_label: str | None = None
        self._init_state()
        self.state.change("ltr_correct_lung")(self._on_correct_lung_changed)
        self.state.change("ltr_show_heterogeneity")(self._on_show_heterogeneity)
        self._candidates: list[dict] = []
        self._build_ui()
        self.seg_logic.set_ui(self.seg_ui)
        self._table_update: asyncio.Task | None = None
        self.slicer.segmentation_editor.segmentation_modified.connect(self._on_segmentation_edited)
        if ct is not None:
            self.load(ct, seeds or [])

    # -- state and UI -----------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.ltr_lungs, s.ltr_lung_methods = methods.DEFAULT_LUNGS, list(methods.LUNG_METHODS)
        s.ltr_tumor, s.ltr_tumor_methods = methods.DEFAULT_TUMOR, list(methods.TUMOR_METHODS)
        s.ltr_recon, s.ltr_recon_methods = methods.DEFAULT_RECON, list(methods.RECON_METHODS)
        s.ltr_device, s.ltr_devices = "auto", list(methods.DEVICES)
        s.ltr_busy, s.ltr_progress, s.ltr_message, s.ltr_error = False, 0, "", ""
        s.ltr_placing, s.ltr_seeds = "", []
        s.ltr_volume_rows, s.ltr_tumor_rows, s.ltr_model, s.ltr_candidates = [], [], "", []
        s.ltr_volume_headers = [{"title": "segment", "key": "segment"}, {"title": "volume (mL)", "key": "volume_ml"},
                                {"title": "voxels", "key": "voxels"}]
        s.ltr_tumor_headers = []
        s.ltr_correct_lung, s.ltr_lungs_names = RIGHT_LUNG, [RIGHT_LUNG, LEFT_LUNG]
        s.ltr_axial_k, s.ltr_axial_probe = 0, {}
        s.ltr_mrb_name, s.ltr_saved = "lungtumorrecon.mrb", ""
        s.ltr_warnings = []
        s.ltr_has_heterogeneity, s.ltr_show_heterogeneity = False, False

    def _build_ui(self) -> None:
        with ViewerLayout(self.server, title=TITLE, is_drawer_visible=True) as self.layout:
            self.layout.title.set_text(f"{TITLE} (not for clinical use)")
            with self.layout.drawer:
                self.seg_ui = SegmentEditorUI()
            with self.layout.toolbar:
                SegmentEditorToolbarUI(editor_ui=self.seg_ui)
            with self.layout.undo_redo:
                SegmentEditorUndoRedoUI(editor_ui=self.seg_ui)
            with self.layout.content:
                self.layout_manager.initialize_layout_grid(self.layout)
            with v3.VNavigationDrawer(location="right", permanent=True, width=360, id="ltr-panel"):
                self._build_panel()

    def _section(self, title: str) -> None:
        html.Div(title, classes="text-subtitle-1 font-weight-bold mt-3 mb-1")

    def _build_panel(self) -> None:
        busy = "ltr_busy"
        with v3.VContainer(classes="pa-3"):
            html.Div(TITLE, classes="text-h6", id="ltr-title")
            v3.VAlert(v_if="ltr_error", type="error", density="compact", closable=True, id="ltr-error",
                      text=("ltr_error",), click_close="ltr_error = ''", classes="my-2")

            self._section("Input")
            html.Div("Seeds: click a button, then click in a slice view.", classes="text-caption")
            with html.Div(classes="d-flex flex-wrap ga-1"):
                for label, key in ((TUMOR, "tumor"), (RIGHT_LUNG, "right-lung"), (LEFT_LUNG, "left-lung")):
                    v3.VBtn(f"Place {label} seed", size="small", id=f"ltr-place-{key}", disabled=(busy,),
                            color=(f"ltr_placing === '{label}' ? 'primary' : undefined",),
                            click=(self.place_seed, f"['{label}']"))
            with html.Div(id="ltr-seeds", classes="text-caption"):
                html.Div("{{ seed.label }}: RAS {{ seed.ras }}", v_for="seed in ltr_seeds", classes="ltr-seed")
            v3.VBtn("Clear seeds", size="x-small", variant="text", click=self.clear_seeds, disabled=(busy,))

            self._section("Lungs")
            v3.VSelect(label="Lung method", v_model=("ltr_lungs",), items=("ltr_lung_methods",), density="compact",
                       hide_details=True, id="ltr-lungs-method")
            v3.VBtn("Segment lungs", size="small", classes="mt-1", id="ltr-run-lungs", disabled=(busy,),
                    click=(self.start_stage, "['lungs']"))
            html.Div("Correct one lung on the axial slice with the editor, then:", classes="text-caption mt-2")
            v3.VSelect(label="Lung to correct", v_model=("ltr_correct_lung",), items=("ltr_lungs_names",),
                       density="compact", hide_details=True, id="ltr-correct-lung")
            v3.VBtn("Re-propagate from slice {{ ltr_axial_k + 1 }}", size="small", classes="mt-1", id="ltr-repropagate",
                    disabled=(busy,), click=(self.start_stage, "['repropagate']"))

            self._section("Tumour")
            with html.Div(classes="d-flex ga-2"):
                v3.VSelect(label="Tumour method", v_model=("ltr_tumor",), items=("ltr_tumor_methods",),
                           density="compact", hide_details=True, id="ltr-tumor-method")
                v3.VSelect(label="Device", v_model=("ltr_device",), items=("ltr_devices",), density="compact",
                           hide_details=True, style="max-width: 100px", id="ltr-device")
            v3.VBtn("Segment tumour", size="small", classes="mt-1", id="ltr-run-tumor", disabled=(busy,),
                    click=(self.start_stage, "['tumor']"))
            with html.Div(v_if="ltr_candidates.length", classes="text-caption mt-1", id="ltr-candidates"):
                html.Div("Candidates found without a tumour seed (best first; the volume is the candidate's, "
                         "not the segment's). The tumour segment was grown from candidate 1: check it in the "
                         "views, or seed another and segment the tumour again.")
                with html.Div(v_for="c in ltr_candidates", key="c.rank", classes="d-flex align-center ga-1 ltr-candidate"):
                    html.Span("{{ c.rank }}. {{ c.volume_ml }} mL at RAS {{ c.ras }}")
                    v3.VBtn("Show", size="x-small", variant="text", classes="ltr-candidate-show",
                            click=(self.show_candidate, "[c.rank - 1]"))
                    v3.VBtn("Seed here", size="x-small", variant="tonal", classes="ltr-candidate-seed", disabled=(busy,),
                            click=(self.seed_candidate, "[c.rank - 1]"))

            self._section("3D reconstruction")
            v3.VSelect(label="Surface method", v_model=("ltr_recon",), items=("ltr_recon_methods",),
                       density="compact", hide_details=True, id="ltr-recon-method")
            v3.VBtn("Build 3D model", size="small", classes="mt-1", id="ltr-run-recon", disabled=(busy,),
                    click=(self.start_stage, "['recon']"))

            v3.VDivider(classes="my-3")
            with html.Div(classes="d-flex ga-2"):
                v3.VBtn("Run all", color="primary", id="ltr-run-all", disabled=(busy,),
                        click=(self.start_stage, "['all']"))
                v3.VBtn("Cancel", color="error", variant="outlined", id="ltr-cancel", disabled=(f"!{busy}",),
                        click=self.cancel)
            v3.VProgressLinear(model_value=("ltr_progress",), height=8, classes="mt-2", id="ltr-progress",
                               color=("ltr_busy ? 'primary' : 'success'",))
            html.Div("{{ ltr_message }}", classes="text-caption", id="ltr-message")
            with html.Div(v_if="ltr_warnings.length", classes="text-caption text-warning", id="ltr-warnings"):
                html.Div("warning: {{ w }}", v_for="w in ltr_warnings")

            self._section("Results")
            v3.VDataTable(items=("ltr_volume_rows",), headers=("ltr_volume_headers",), density="compact",
                          hide_default_footer=True, id="ltr-volumes-table", items_per_page=-1)
            v3.VDataTable(v_if="ltr_tumor_rows.length", items=("ltr_tumor_rows",), headers=("ltr_tumor_headers",),
                          density="compact", hide_default_footer=True, id="ltr-tumors-table", items_per_page=-1)
            html.Div("3D model: {{ ltr_model }}", v_if="ltr_model", classes="text-caption", id="ltr-model")
            v3.VCheckbox(v_if="ltr_has_heterogeneity", v_model=("ltr_show_heterogeneity",), density="compact",
                         hide_details=True, id="ltr-show-heterogeneity",
                         label="Show the tumour heterogeneity map over the slices")

            self._section("Export")
            with html.Div(classes="d-flex align-center ga-2"):
                v3.VTextField(v_model=("ltr_mrb_name",), label="Scene file (.mrb)", density="compact",
                              hide_details=True, id="ltr-mrb-name")
                v3.VBtn("Save", size="small", id="ltr-save-mrb", disabled=(busy,), click=self.save_mrb)
            html.Div("{{ ltr_saved }}", classes="text-caption", id="ltr-saved")

    # -- input ----------------------------------------------------------------------------------
    def load(self, ct: CTVolume, seeds: list[Seed]) -> None:
        """Show a CT (and seeds) in the views, with an empty segmentation for the editor."""
        name = Path(ct.path).name.split(".")[0] if ct.path else "CT"
        self.volume_node = self.scene.add_volume(ct.array, ct.geometry, name=name or "CT")
        self.segmentation_node = self.scene.set_segmentation({}, ct.geometry, reference_volume=self.volume_node)
        self.seeds_node = self.scene.add_seeds(seeds, name="Seeds")
        self.seeds_node.AddObserver(self.seeds_node.PointPositionDefinedEvent, self._on_point_placed)
        self.slicer.display_manager.show_volume_in_slice_background(self.volume_node)
        self.slicer.display_manager.reset_views()
        self.seg_logic.on_volume_changed(self.volume_node)
        self._give_effect_pipelines_their_views()
        for view in self.slicer.view_manager.get_slice_views():
            # The browser sizes each view after the page opens (the tall, narrow axial view of this
            # layout cut the lungs off at both sides when fitted at the start size): fit the slice
            # to the view at each new size, as the whole CT slice should stay in view.
            view.interactor().AddObserver(vtkCommand.WindowResizeEvent, lambda *_, v=view: v.fit_view_to_content())
            if view.get_orientation() == "Axial":
                self._axial_view = view
                view.modified.connect(self._on_axial_modified)
                self._on_axial_modified(view)
        self._update_seeds()

    def _give_effect_pipelines_their_views(self) -> None:
        """Work around trame-slicer 2.0: the editor builds each effect's per-view pipelines (paint,
        erase, smoothing, ...) when it starts, before the views are registered, so they have no
        view: the eraser then failed to activate, or erased nothing. Give each the view of its
        view node."""
        editor, views = self.slicer.segmentation_editor, self.slicer.view_manager
        for effect_type in vars(trame_slicer_segmentation).values():
            if not (isinstance(effect_type, type) and issubclass(effect_type, SegmentationEffect)
                    and editor.is_effect_type_registered(effect_type)):
                continue
            for pipeline_ref in editor.get_effect(effect_type).pipelines:
                pipeline = pipeline_ref()
                if pipeline is not None and getattr(pipeline, "_view", None) is None:
                    view = views.get_view(pipeline.GetViewNode())
                    if view is not None:
                        pipeline.SetView(view)

    def _on_correct_lung_changed(self, ltr_correct_lung, **_) -> None:
        """Choosing the lung to correct makes it the editor's active segment."""
        if self.segmentation_node is None:
            return
        segment_id = self.segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(ltr_correct_lung)
        if segment_id:
            self.slicer.segmentation_editor.set_active_segment_id(segment_id)

    def _ct(self) -> CTVolume:
        return CTVolume(array=Scene.volume_array(self.volume_node), geometry=Scene.volume_geometry(self.volume_node),
                        path=self.volume_node.GetName())

    def _on_axial_modified(self, view) -> None:
        """The axial slice shown now (for re-propagation), and the view's pixel-to-RAS map
        (the browser tests click on a given RAS point with it)."""
        if self.volume_node is None:
            return
        slice_node = view.get_view_node()
        geometry = Scene.volume_geometry(self.volume_node)
        m = slice_node.GetXYToRAS()
        with self.state:
            self.state.ltr_axial_k = Scene.axial_index(slice_node, geometry)
            self.state.ltr_axial_probe = {
                "xy_to_ras": [m.GetElement(r, c) for r in range(4) for c in range(4)],
                "size": list(view.render_window().GetSize()),
            }

    # -- seeds ----------------------------------------------------------------------------------
    def place_seed(self, label: str) -> None:
        """Slicer's place mode: the next click in a view adds a point with this label."""
        self._placing_label = label
        self.state.ltr_placing = label
        self.slicer.markups_logic.place_node(self.seeds_node, persistent=False)

    def _on_point_placed(self, node, _event) -> None:
        n = node.GetNumberOfControlPoints()
        if n and self._placing_label:
            node.SetNthControlPointLabel(n - 1, self._placing_label)
        self._placing_label = None
        with self.state:
            self.state.ltr_placing = ""
        self._update_seeds()

    def clear_seeds(self) -> None:
        self.seeds_node.RemoveAllControlPoints()
        self._update_seeds()

    def _update_seeds(self) -> None:
        rows = []
        node = self.seeds_node
        for i in range(node.GetNumberOfControlPoints()):
            ras = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(i, ras)
            rows.append({"label": node.GetNthControlPointLabel(i), "ras": ", ".join(f"{v:.1f}" for v in ras)})
        with self.state:
            self.state.ltr_seeds = rows

    # -- stages -----------------------------------------------------------------------------------
    def _options(self) -> PipelineOptions:
        s = self.state
        return PipelineOptions(lungs=s.ltr_lungs, tumor=s.ltr_tumor, recon=s.ltr_recon, device=s.ltr_device)

    def start_stage(self, stage: str) -> None:
        if self.job is not None or self.volume_node is None:
            return
        self.state.ltr_error = ""
        self._end_editing()
        try:
            options = self._options()
            # Unknown or unbuilt methods are refused now; weights and devices are checked by the
            # child, which reports in one line: the server never imports torch (torchvision next
            # to trame-slicer's VTK crashes the process).
            for stage_name, method in (("lungs", options.lungs), ("tumor", options.tumor), ("recon", options.recon)):
                methods.check_available(stage_name, method)
            ct = self._ct()
            seeds = Scene.seeds_from_node(self.seeds_node, self.volume_node)
            segments = self.scene.segment_masks(self.segmentation_node, ct.geometry) if stage != "all" else {}
            correction = None
            if stage == "repropagate":
                lung, k = self.state.ltr_correct_lung, int(self.state.ltr_axial_k)
                if lung not in segments or not segments[lung][k].any():
                    raise InputError(f"the {lung} has no contour on slice {k + 1} to re-propagate from")
                correction = LungCorrection(lung=lung, k=k, mask=segments[lung][k])
            inputs, replaced = plan_stage(stage, ct, seeds, options, segments, correction)
        except LungTumorReconError as exc:
            self.state.ltr_error = str(exc)
            return
        self.job = PipelineJob(inputs)
        self.state.ltr_busy, self.state.ltr_progress = True, 0
        self.state.ltr_message = f"{_STAGE_TITLES[stage]}: starting"
        self.state.ltr_warnings = []
        create_task(self._follow(self.job, stage, replaced))

    async def _follow(self, job: PipelineJob, stage: str, replaced: list[str]) -> None:
        """Poll the child process; the UI stays live between polls."""
        try:
            job.start()
            while job.running:
                await asyncio.sleep(POLL_S)
                status = job.poll()
                with self.state:
                    self.state.ltr_progress = round(100 * status.fraction)
                    self.state.ltr_message = f"{_STAGE_TITLES[stage]}: {status.message}"
            job.poll()
            if job.cancelled:
                message, error = f"{_STAGE_TITLES[stage]}: cancelled; the scene is unchanged", ""
            elif job.error:
                message, error = f"{_STAGE_TITLES[stage]}: failed", job.error
            else:
                result = job.result()
                # one step on the editor's undo stack: Undo brings back the segments as they were
                # before the stage, as it does after a brush stroke (and a stroke made before the
                # stage can no longer undo the stage's result with it)
                with SegmentationLabelMapUndoCommand.push_state_change(self.slicer.segmentation_editor.active_segmentation):
                    self.scene.replace_result(result, self.volume_node, self.segmentation_node,
                                              segments=replaced or [])
                self._refresh_editor()
                if result.surface_lps is not None:
                    for view in self.slicer.view_manager.get_threed_views():
                        view.fit_view_to_content()  # the new model in view; the slices stay where the user is
                        view.schedule_render()
                self._show_results(result)
                message, error = f"{_STAGE_TITLES[stage]}: done", ""
        except Exception as exc:  # noqa: BLE001 - shown in the panel, which stays usable
            traceback.print_exc()  # the server's log keeps the detail
            message, error = f"{_STAGE_TITLES[stage]}: failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.cleanup()
            self.job = None
        with self.state:
            self.state.ltr_busy = False
            self.state.ltr_progress = 100 if not error and not job.cancelled else 0
            self.state.ltr_message, self.state.ltr_error = message, error

    def _end_editing(self) -> None:
        """Finish the editor's tool before reading or saving segments: an active brush can still
        commit a pending stroke later, behind the table's back."""
        try:
            self.slicer.segmentation_editor.deactivate_effect()
        except AttributeError:  # trame-slicer 2.0: a brush pipeline of a view the user never painted in
            pass

    def _refresh_editor(self) -> None:
        """The segment list shows the new segments. (Not on_volume_changed: trame-slicer 2.0 fails
        deactivating a brush effect whose pipeline has no widget, after the user painted.)"""
        editor = self.slicer.segmentation_editor
        ids = editor.get_segment_ids()
        if ids and editor.get_active_segment_id() not in ids:
            wanted = self.segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(self.state.ltr_correct_lung)
            editor.set_active_segment_id(wanted or ids[0])
        editor.trigger_all_signals()

    def _on_segmentation_edited(self, *_) -> None:
        """Edits change the volumes table too (debounced: a brush stroke sends many events)."""
        if self.job is None and self.segmentation_node is not None and self._table_update is None:
            self._table_update = create_task(self._update_volumes_table())

    async def _update_volumes_table(self) -> None:
        await asyncio.sleep(0.5)
        self._table_update = None
        if self.job is not None:
            return
        self.scene.refresh_segment_volumes(self.segmentation_node, Scene.volume_geometry(self.volume_node))
        with self.state:
            self.state.ltr_volume_rows = self._volume_rows()

    def _volume_rows(self) -> list[dict]:
        table = self.scene.node_by_name("Segment volumes", "vtkMRMLTableNode")
        return [{"segment": r["segment"], "volume_ml": _number(r["volume_ml"]), "voxels": str(r["voxels"])}
                for r in (Scene.table_rows(table) if table else [])]

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _show_results(self, result) -> None:
        tumors = self.scene.node_by_name("Tumor measurements", "vtkMRMLTableNode")
        model = self.scene.node_by_name("tumor model", "vtkMRMLModelNode")
        vol_rows = self._volume_rows()
        per_tumor = Scene.table_rows(tumors) if tumors else []
        tumor_headers = [{"title": "measurement", "key": "measure"}] + [
            {"title": str(r.get("tumor", i)), "key": f"t{i}"} for i, r in enumerate(per_tumor)]
        tumor_rows = [{"measure": title, **{f"t{i}": _number(r.get(key, "")) for i, r in enumerate(per_tumor)}}
                      for key, title in _TUMOR_MEASURES] if per_tumor else []
        self._candidates = list(result.candidates[:5])
        candidates = [{"rank": rank, "volume_ml": f"{c['volume_ml']:.2f}",
                       "ras": ", ".join(f"{v:.1f}" for v in lps_to_ras(np.asarray(c["centroid_lps"])))}
                      for rank, c in enumerate(self._candidates, start=1)]
        heterogeneity = self.scene.node_by_name(HETEROGENEITY_VOLUME, "vtkMRMLScalarVolumeNode")
        with self.state:
            self.state.ltr_volume_rows, self.state.ltr_tumor_rows = vol_rows, tumor_rows
            self.state.ltr_tumor_headers = tumor_headers
            self.state.ltr_model = (f"{model.GetName()} ({model.GetPolyData().GetNumberOfPoints()} points)"
                                    if model is not None and model.GetPolyData() is not None else "")
            self.state.ltr_candidates = candidates
            self.state.ltr_warnings = list(result.warnings)
            self.state.ltr_has_heterogeneity = heterogeneity is not None
        self._on_show_heterogeneity(self.state.ltr_show_heterogeneity)  # a new map, or none, replaced the old

    # -- candidates and the heterogeneity map ---------------------------------------------------
    def _jump_to(self, ras) -> None:
        """Move every slice view through a point, as Slicer's markups do on a click in a list."""
        for view in self.slicer.view_manager.get_slice_views():
            view.get_view_node().JumpSliceByOffsetting(*ras)

    def show_candidate(self, index: int) -> None:
        if 0 <= index < len(self._candidates):
            self._jump_to(lps_to_ras(np.asarray(self._candidates[index]["centroid_lps"])))

    def seed_candidate(self, index: int) -> None:
        """A tumour seed at the candidate's centre: the next tumour stage segments it."""
        if self.job is not None or not 0 <= index < len(self._candidates):
            return
        seed = Seed(label=TUMOR, lps=tuple(float(v) for v in self._candidates[index]["centroid_lps"]))
        self._jump_to(Scene.add_seed(self.seeds_node, seed, self.volume_node))
        self._update_seeds()

    def _on_show_heterogeneity(self, ltr_show_heterogeneity, **_) -> None:
        node = self.scene.node_by_name(HETEROGENEITY_VOLUME, "vtkMRMLScalarVolumeNode")
        shown = node if ltr_show_heterogeneity else None
        self.slicer.display_manager.show_volume_in_slice_foreground(shown)
        for view in self.slicer.view_manager.get_slice_views():
            view.set_foreground_opacity(0.6 if shown is not None else 0.0)

    # -- export ---------------------------------------------------------------------------------
    def save_mrb(self) -> None:
        """The whole scene as a Slicer bundle in the output folder, written atomically."""
        name = str(self.state.ltr_mrb_name).strip()
        try:
            if not name or Path(name).name != name or name.startswith(".") or not name.lower().endswith(".mrb"):
                raise InputError(f"{name!r}: give a file name ending in .mrb (it is saved in {self.out_dir})")
            self.out_dir.mkdir(parents=True, exist_ok=True)
            target = self.out_dir / name
            fd, partial = tempfile.mkstemp(prefix=f".{name}.partial-", suffix=".mrb", dir=self.out_dir)
            os.close(fd)
            self._end_editing()
            try:
                geometry = Scene.volume_geometry(self.volume_node)
                self.scene.refresh_segment_volumes(self.segmentation_node, geometry)
                self.scene.save_mrb(partial)
                os.replace(partial, target)
            finally:
                Path(partial).unlink(missing_ok=True)
        except (LungTumorReconError, OSError) as exc:
            self.state.ltr_error = str(exc)
            return
        self.state.ltr_volume_rows = self._volume_rows()
        self.state.ltr_saved = f"saved {target.resolve()}"


def serve(ct: CTVolume, seeds: list[Seed], host: str = "127.0.0.1", port: int = 8080, out_dir: str | Path = ".") -> None:
    """Start the app on ``host:port`` (blocks until the server stops)."""
    from trame.app import get_server

    app = LungTumorReconWebApp(get_server(f"lungtumorrecon-{port}", client_type="vue3"), ct, seeds, out_dir)
    app.server.start(host=host, port=port, open_browser=False, show_connection_info=True)
