"""``lungtumorrecon app``: the LungTumorRecon panel as a web app on Slicer's scene (trame-slicer).

A front end only: the scene is trame-slicer's (real MRML, views rendered offscreen and
streamed as images); the panel's behaviour is :class:`~LungTumorReconWeb.logic.PanelLogic`
(stages through the library's StageSession, results through its ResultPresenter), its widgets
:mod:`LungTumorReconWeb.ui`, its state :class:`~LungTumorReconWeb.state.PanelState`. This
class wires them to trame-slicer's views and segment editor. Not for clinical use.
"""

from __future__ import annotations

import hmac
import os
from contextlib import nullcontext
from pathlib import Path

from aiohttp import web

from trame.app import TrameApp
from trame.widgets import vuetify3 as v3
from trame_server.utils.typed_state import TypedState
from trame_slicer import module as trame_slicer_module
from trame_slicer import segmentation as trame_slicer_segmentation
from trame_slicer.app.logic import SegmentEditorLogic
from trame_slicer.app.ui import SegmentEditorToolbarUI, SegmentEditorUI, SegmentEditorUndoRedoUI, ViewerLayout
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.segmentation import SegmentationEffect
from trame_slicer.segmentation.segmentation_undo_command import SegmentationLabelMapUndoCommand
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition, ViewProps, ViewType
from vtkmodules.vtkCommonCore import vtkCommand

from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.mrml.followup_scene import show_in_views
from LungTumorReconLib.mrml.roles import HETEROGENEITY_OPACITY
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconWeb.cases import CaseLogic
from LungTumorReconWeb.launch import KEY_HEADER, PORT_FILE
from LungTumorReconWeb.logic import DOWNLOAD_ROUTE, PanelLogic
from LungTumorReconWeb.state import CASE_FIELDS, NAMESPACE, PanelState
from LungTumorReconWeb.ui import TITLE, build_panel

MAIN_LAYOUT = "Axial Primary"
FOLLOWUP_LAYOUT = "Follow-up side by side"
# The follow-up's two axial views (baseline, follow-up): the app's own, so that the CT views keep
# what they show, in a view group of their own, so that linking them moves neither CT view.
FOLLOWUP_VIEWS = (("Baseline", "#F34A33"), ("Follow-up", "#EFD64D"))
FOLLOWUP_VIEW_GROUP = 1


def _followup_layout() -> Layout:
    views = [ViewLayoutDefinition(tag, ViewType.SLICE_VIEW, ViewProps(label=tag, orientation="Axial", color=color,
                                                                      group=FOLLOWUP_VIEW_GROUP))
             for tag, color in FOLLOWUP_VIEWS]
    return Layout(LayoutDirection.Horizontal, views)


class LungTumorReconWebApp(TrameApp):
    """The panel beside trame-slicer's views and segment editor."""

    def __init__(self, server=None, ct: CTVolume | None = None, seeds: list[Seed] | None = None,
                 out_dir: str | Path = ".", data_dir: Path | None = None, max_upload_bytes: int = 10**9,
                 temp_dir: Path | None = None) -> None:
        super().__init__(server)
        self.server.enable_module(trame_slicer_module)
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        self.seg_logic = SegmentEditorLogic(self.server, self.slicer)
        self.layout_manager = LayoutManager(self.slicer.scene, self.slicer.view_manager, self.server)
        self.layout_manager.register_layout_dict(LayoutManager.default_grid_configuration())
        self.layout_manager.set_layout(MAIN_LAYOUT)
        self.typed = TypedState(self.state, PanelState, namespace=NAMESPACE)
        self.logic = PanelLogic(self.typed, Scene.attach(self.slicer.scene, self.slicer.app_logic), self, Path(out_dir))
        self.cases = CaseLogic(self, data_dir, max_upload_bytes, temp_dir)
        self._observed_views: set[int] = set()
        self.typed.bind_changes({self.typed.name.correct_lung: self._select_segment,
                                 self.typed.name.show_heterogeneity: self.logic.show_heterogeneity})
        self._build_ui()
        self.seg_logic.set_ui(self.seg_ui)
        self.slicer.segmentation_editor.segmentation_modified.connect(self.logic.on_segmentation_edited)
        if ct is not None:
            self.load(ct, seeds or [])

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
                build_panel(self.typed, self.logic, self.cases)

    def open_case(self, ct: CTVolume, name: str) -> None:
        """Another case in place of the one shown: the scene emptied, as trame-slicer's own
        volume loading does, and the panel's results back to their defaults."""
        self.end_editing()
        self.show_main_views()
        self.slicer.scene.Clear()
        defaults = PanelState()
        for name_ in CASE_FIELDS:
            setattr(self.typed.data, name_, getattr(defaults, name_))
        self.logic.forget_case()
        self.load(ct, [], name)

    def load(self, ct: CTVolume, seeds: list[Seed], name: str | None = None) -> None:
        """Show a CT (and seeds) in the views, with an empty segmentation for the editor."""
        self.typed.data.case_name = name or (Path(ct.path).name if ct.path else "CT")
        self.logic.load(ct, seeds)
        volume = self.logic.volume_node
        self.slicer.display_manager.show_volume_in_slice_background(volume)
        self.slicer.display_manager.reset_views()
        self.seg_logic.on_volume_changed(volume)
        self._give_effect_pipelines_their_views()
        for view in self.slicer.view_manager.get_slice_views():
            if id(view) in self._observed_views:  # an earlier case's observers stay
                continue
            self._observed_views.add(id(view))
            # The browser sizes each view after the page opens: fit the slice to the view at each
            # new size, as the whole CT slice should stay in view.
            view.interactor().AddObserver(vtkCommand.WindowResizeEvent, lambda *_, v=view: v.fit_view_to_content())
            if view.get_orientation() == "Axial":
                view.modified.connect(self._on_axial_modified)
        for view in self.slicer.view_manager.get_slice_views():
            if view.get_orientation() == "Axial":
                self._on_axial_modified(view)

    def _give_effect_pipelines_their_views(self) -> None:
        """Work around trame-slicer 2.0.0: the editor builds each effect's per-view pipelines
        (paint, erase, smoothing, ...) when it starts, before the views are registered, so they
        have no view and the eraser fails to activate or erases nothing. Give each the view of
        its view node."""
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

    def _select_segment(self, lung: str) -> None:
        """Choosing the lung to correct makes it the editor's active segment."""
        node = self.logic.segmentation_node
        segment_id = node.GetSegmentation().GetSegmentIdBySegmentName(lung) if node is not None else ""
        if segment_id:
            self.slicer.segmentation_editor.set_active_segment_id(segment_id)

    def _on_axial_modified(self, view) -> None:
        """The axial slice shown now (for re-propagation) and the view's pixel-to-RAS map."""
        if self.logic.volume_node is None:
            return
        slice_node = view.get_view_node()
        m = slice_node.GetXYToRAS()
        with self.state:
            self.typed.data.axial_k = Scene.axial_index(slice_node, Scene.volume_geometry(self.logic.volume_node))
            self.typed.data.axial_probe = {"xy_to_ras": [m.GetElement(r, c) for r in range(4) for c in range(4)],
                                           "size": list(view.render_window().GetSize())}

    # -- Views: what PanelLogic asks of the views and the editor ---------------------------------------
    def end_editing(self) -> None:
        """Finish the editor's tool before segments are read or saved: an active brush can still
        commit a pending stroke later."""
        try:
            self.slicer.segmentation_editor.deactivate_effect()
        except AttributeError:  # trame-slicer 2.0.0: a brush pipeline of a view the user never painted in
            pass

    def editor_undo_step(self):
        segmentation = self.slicer.segmentation_editor.active_segmentation
        if segmentation is None:
            return nullcontext()
        return SegmentationLabelMapUndoCommand.push_state_change(segmentation)

    def refresh_editor(self, segmentation_node, preferred_segment: str) -> None:
        """The segment list shows the new segments. (Not on_volume_changed: trame-slicer 2.0.0
        fails deactivating a brush effect whose pipeline has no widget, after the user painted.)"""
        editor = self.slicer.segmentation_editor
        ids = editor.get_segment_ids()
        if ids and editor.get_active_segment_id() not in ids:
            wanted = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(preferred_segment)
            editor.set_active_segment_id(wanted or ids[0])
        editor.trigger_all_signals()

    def fit_3d_views(self) -> None:
        """The new model in view; the slices stay where the user is."""
        for view in self.slicer.view_manager.get_threed_views():
            view.fit_view_to_content()
            view.schedule_render()

    def jump_to(self, ras) -> None:
        """Every slice view through a point, as Slicer's markups do on a click in a list."""
        for view in self.slicer.view_manager.get_slice_views():
            view.get_view_node().JumpSliceByOffsetting(*ras)

    def show_foreground(self, volume_node) -> None:
        self.slicer.display_manager.show_volume_in_slice_foreground(volume_node)
        for view in self.slicer.view_manager.get_slice_views():
            view.set_foreground_opacity(HETEROGENEITY_OPACITY if volume_node is not None else 0.0)

    def place_point(self, markups_node) -> None:
        self.slicer.markups_logic.place_node(markups_node, persistent=False)

    def show_followup(self, nodes) -> None:
        """A loaded follow-up (the library's FollowupNodes) side by side: two axial views, each
        with its CT and its own segmentation, linked, each at the first tumour's centre."""
        if not self.layout_manager.has_layout(FOLLOWUP_LAYOUT):
            self.layout_manager.register_layout(FOLLOWUP_LAYOUT, _followup_layout())
        self.layout_manager.set_layout(FOLLOWUP_LAYOUT)
        shown = ((nodes.baseline_volume, nodes.baseline_segmentation), (nodes.followup_volume,
                                                                        nodes.followup_segmentation))
        for index, ((tag, _), (volume, segmentation)) in enumerate(zip(FOLLOWUP_VIEWS, shown)):
            view = self.slicer.view_manager.get_view(tag)
            view.set_background_volume_id(volume.GetID())
            view.set_foreground_volume_id(None)
            # linked: moving one moves the other to the same place (the follow-up is aligned on the baseline)
            self.slicer.scene.GetSingletonNode(tag, "vtkMRMLSliceCompositeNode").SetLinkedControl(True)
            show_in_views(segmentation, [view.get_view_node_id()])
            view.fit_view_to_content()
            if nodes.centres_ras:  # a jump from code is not passed on to the linked view
                view.get_view_node().JumpSliceByCentering(*nodes.centres_ras[0][index])
            view.schedule_render()

    def show_main_views(self) -> None:
        self.layout_manager.set_layout(MAIN_LAYOUT)

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        """GET download/NAME.mrb: a scene bundle this session saved, as an attachment."""
        path = self.logic.saved_file(request.match_info["name"])
        if path is None:
            return web.Response(status=404, text="no such saved scene\n")
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'})


def _only_with_key(key: str):
    """Every request without the session's key is refused: the app answers its front server only
    (any user of the machine can reach a loopback port)."""
    @web.middleware
    async def check(request: web.Request, handler):
        if not hmac.compare_digest(request.headers.get(KEY_HEADER, "").encode(), key.encode()):
            return web.Response(status=403, text="forbidden\n")
        return await handler(request)
    return check


def serve(ct: CTVolume, seeds: list[Seed], host: str = "127.0.0.1", port: int = 8080, out_dir: str | Path = ".",
          data_dir: Path | None = None, max_upload_bytes: int = 10**9, session_key: str | None = None,
          session_dir: Path | None = None) -> None:
    """Start one session's app on ``host:port`` (blocks until the server stops). With a
    ``session_key``, only requests carrying it are answered, and the port is written to
    ``session_dir`` once the app answers."""
    from trame.app import get_server

    server = get_server(f"lungtumorrecon-{port}", client_type="vue3")
    app = LungTumorReconWebApp(server, ct, seeds, out_dir, data_dir, max_upload_bytes, session_dir)

    def bind(wslink_server) -> None:
        if session_key is not None:
            wslink_server.app.middlewares.append(_only_with_key(session_key))
        wslink_server.app.router.add_post("/upload", app.cases.handle_upload)
        wslink_server.app.router.add_get(f"/{DOWNLOAD_ROUTE}/{{name}}", app.handle_download)

    def ready(**_) -> None:
        if session_dir is not None:
            partial = session_dir / f".{PORT_FILE}"
            partial.write_text(str(server.port))
            os.replace(partial, session_dir / PORT_FILE)

    server.controller.on_server_bind.add(bind)
    server.controller.on_server_ready.add(ready)
    # the front server ends idle sessions: the app itself never stops for want of a client
    server.start(host=host, port=port, open_browser=False, show_connection_info=session_dir is None, timeout=0)
