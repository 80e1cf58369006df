"""The web panel's follow-up section with a fake job (as test_web_finetune.py fakes the fine-tuning
job; test_followup_job.py runs the real FollowupJob): what it asks the job for, and what the panel
and the scene show for each way a run can end, on a real MRML scene and trame's real typed state.
The views are test_web_logic.py's recording stand-in, except in the last test, which shows a
follow-up side by side in the real app's trame-slicer views (offscreen, no browser)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fake_jobs import FakeFolderJob
from test_module_followup import finished_pair  # noqa: F401  (a fixture: a small pair and its follow-up folder)
from test_web_logic import RecordingViews

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.followup.job import FollowupOutcome
from LungTumorReconLib.io.seeds import Seed, read_seeds
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.session import Outcome

pytest.importorskip("trame_server")


class FakeJob(FakeFolderJob):
    """A FollowupJob that 'runs' for two polls and ends as told; it reads its seeds file at start."""

    def __init__(self, request, outcome: FollowupOutcome, started: list):
        super().__init__(request, outcome, started, ProgressEvent(Step.LUNGS, "follow-up: lungs", 0.3), "follow-up")
        self.seeds = read_seeds(request.seeds) if request.seeds else []


@pytest.fixture
def panel(tmp_path, monkeypatch, finished_pair):  # noqa: F811
    """The panel's logic on the pair's baseline, with a tumour seed; (logic, state, pair, folder)."""
    from trame.app import get_server
    from trame_server.utils.typed_state import TypedState

    import LungTumorReconWeb.jobs as jobs
    from LungTumorReconWeb.logic import PanelLogic
    from LungTumorReconWeb.state import NAMESPACE, PanelState

    pair, out = finished_pair
    monkeypatch.setattr(jobs, "POLL_S", 0.01)
    server = get_server(f"ltr-followup-test-{tmp_path.name}", client_type="vue3")
    typed = TypedState(server.state, PanelState, namespace=NAMESPACE)
    logic = PanelLogic(typed, Scene(), RecordingViews(), out_dir=tmp_path)
    logic.load(pair.baseline, [Seed("tumor", pair.seed_lps)])
    typed.data.followup_path = str(out.parent / "f.nrrd")
    yield logic, typed.data, pair, out
    logic.scene.close()


def _done(out) -> FollowupOutcome:
    import json

    return FollowupOutcome(Outcome.DONE, f"follow-up done: {out}\nRECIST 1.1: SD (...). Not for clinical use.",
                           out_dir=out, report=json.loads((out / "followup.json").read_text()))


def _run(logic, outcome=None, started=None) -> None:
    started = [] if started is None else started
    logic.followup.job_factory = lambda request: FakeJob(request, outcome, started)

    async def go():
        logic.followup.start()
        while logic.followup.job is not None:
            await asyncio.sleep(0.01)
    asyncio.run(go())


def test_the_ct_shown_as_baseline_and_the_result_side_by_side(panel, tmp_path):
    logic, state, pair, out = panel
    started = []
    state.followup_baseline_date, state.followup_date = "2026-01-01", "2026-04-01"
    _run(logic, _done(out), started)
    assert state.error == "" and state.followup_busy is False and state.followup_progress == 100
    request, job = started[0].request, started[0]
    assert request.followup == str(out.parent / "f.nrrd") and request.out_dir == str(tmp_path / "followup")
    assert request.dates == ["2026-01-01", "2026-04-01"] and (request.tumor, request.device) == ("gk", "auto")
    assert np.allclose(job.seeds[0].lps, pair.seed_lps)  # the panel's seeds, as baseline seeds
    assert logic.followup._inputs is None  # the CT written for the job is gone
    # the result: the growth table, RECIST, and both CTs side by side
    assert [r["tumor"] for r in state.followup_rows] == ["tumor 1"] and state.followup_recist.startswith("RECIST 1.1")
    assert "show_followup" in logic.views.calls and state.followup_shown
    nodes = logic.followup.nodes
    assert nodes.baseline_volume is logic.volume_node and nodes.followup_volume.GetName() == "follow-up CT"
    assert np.array_equal(Scene.volume_array(nodes.followup_volume), pair.followup.array)
    assert nodes.followup_volume.GetParentTransformNode() is nodes.transform
    assert state.followup_message.startswith(f"follow-up done: {out}")
    # again: the previous follow-up CT and its nodes are replaced, the CT shown is kept
    _run(logic, _done(out))
    volumes = logic.scene.nodes_by_class("vtkMRMLScalarVolumeNode")
    assert len(volumes) == 2 and logic.volume_node in volumes
    assert len(logic.scene.nodes_by_class("vtkMRMLSegmentationNode")) == 3  # the panel's and the follow-up's two
    logic.followup.toggle_views()
    assert logic.views.calls[-1] == "show_main_views" and not state.followup_shown
    logic.followup.toggle_views()
    assert logic.views.calls[-1] == "show_followup" and state.followup_shown


def test_a_baseline_from_a_file_is_loaded_too(panel):
    logic, state, _, out = panel
    started = []
    state.followup_baseline_current, state.followup_baseline_path = False, str(out.parent / "b.nrrd")
    _run(logic, _done(out), started)
    assert state.error == "" and started[0].request.baseline == str(out.parent / "b.nrrd")
    assert started[0].request.seeds is None  # the panel's seeds are on the CT shown, not on this one
    names = [n.GetName() for n in logic.scene.nodes_by_class("vtkMRMLScalarVolumeNode")]
    assert names == [logic.volume_node.GetName(), "baseline CT", "follow-up CT"]
    assert logic.followup.nodes.baseline_volume is not logic.volume_node


def test_refusals_failures_and_cancel_are_one_line_naming_the_control(panel):
    logic, state, _, _ = panel
    path = state.followup_path
    state.followup_path = ""
    logic.followup.start()
    assert state.error == "Follow-up CT: give the follow-up CT (a DICOM folder or an image file)"
    state.followup_path, state.followup_date = path, "2026-04-01"
    logic.followup.start()
    assert state.error.startswith("Dates: give both dates") and logic.followup.job is None
    state.followup_date = ""
    state.followup_baseline_current = False
    logic.followup.start()
    assert state.error == "Baseline CT: give the baseline CT, or use the CT shown"
    state.followup_baseline_current = True
    failed = FollowupOutcome(Outcome.FAILED, "follow-up failed",
                             error=InputError("registration failed: the lungs do not overlap", "/data/later.nrrd"))
    _run(logic, failed)
    assert state.error == "/data/later.nrrd: registration failed: the lungs do not overlap"
    assert state.followup_rows == [] and state.followup_progress == 0 and "show_followup" not in logic.views.calls
    started = []
    logic.followup.job_factory = lambda request: FakeJob(request, failed, started)

    async def go():
        logic.followup.start()
        logic.followup.cancel()
        while logic.followup.job is not None:
            await asyncio.sleep(0.01)
    asyncio.run(go())
    assert started[0].cancelled and state.followup_message.startswith("follow-up cancelled")
    assert state.followup_busy is False and logic.followup._inputs is None


@pytest.mark.slow  # the real app and its views, rendered offscreen: about 7 s
def test_the_app_shows_both_cts_side_by_side_linked(finished_pair, tmp_path):  # noqa: F811
    from trame.app import get_server

    from LungTumorReconWeb.app import FOLLOWUP_LAYOUT, MAIN_LAYOUT, LungTumorReconWebApp

    pair, out = finished_pair
    app = LungTumorReconWebApp(get_server(f"ltr-followup-app-{tmp_path.name}", client_type="vue3"), pair.baseline,
                               [], tmp_path)
    scene = app.logic.scene
    followup = scene.add_volume(pair.followup.array, pair.followup.geometry, name="follow-up CT")
    nodes = app.logic.presenter.load_followup(out, app.logic.volume_node, followup)
    app.show_followup(nodes)
    assert app.layout_manager.layout_id == FOLLOWUP_LAYOUT
    for index, (tag, volume) in enumerate((("Baseline", app.logic.volume_node), ("Follow-up", followup))):
        view = app.slicer.view_manager.get_view(tag)
        slice_node = view.get_view_node()
        assert view.get_background_volume_id() == volume.GetID() and slice_node.GetOrientation() == "Axial"
        assert scene.mrml.GetSingletonNode(tag, "vtkMRMLSliceCompositeNode").GetLinkedControl()
        assert slice_node.GetViewGroup() == 1  # linked with each other, not with the CT views
        centre = [slice_node.GetSliceToRAS().GetElement(r, 3) for r in range(3)]
        assert np.allclose(centre, nodes.centres_ras[0][index], atol=1e-3)
    assert app.slicer.view_manager.get_view("Red").get_view_node().GetViewGroup() == 0
    app.show_main_views()
    assert app.layout_manager.layout_id == MAIN_LAYOUT
