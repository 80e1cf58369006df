"""The web panel's fine-tuning section with a fake job (as test_web_logic.py fakes the stage
runner): saving the corrected case on a real MRML scene, and what the panel shows for each way
a fine-tuning run can end, in trame's real typed state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fake_jobs import FakeFolderJob
from test_web_logic import RecordingViews

from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.finetune.cases import find_case_pairs, read_pair
from LungTumorReconLib.finetune.job import FinetuneOutcome
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.session import Outcome

pytest.importorskip("trame_server")


def FakeJob(request, outcome: FinetuneOutcome, started: list) -> FakeFolderJob:
    """A FinetuneJob that 'trains' for two polls and ends as told."""
    return FakeFolderJob(request, outcome, started, ProgressEvent(Step.TUMOR, "step 5/200: loss 0.300", 0.4),
                         "fine-tuning")


@pytest.fixture
def panel(tmp_path, monkeypatch):
    from trame.app import get_server
    from trame_server.utils.typed_state import TypedState

    import LungTumorReconWeb.jobs as jobs
    from LungTumorReconLib.coordinates import VolumeGeometry
    from LungTumorReconLib.io.ct import CTVolume
    from LungTumorReconWeb.logic import PanelLogic
    from LungTumorReconWeb.state import NAMESPACE, PanelState

    monkeypatch.setattr(jobs, "POLL_S", 0.01)
    server = get_server(f"ltr-finetune-test-{tmp_path.name}", client_type="vue3")
    typed = TypedState(server.state, PanelState, namespace=NAMESPACE)
    logic = PanelLogic(typed, Scene(), RecordingViews(), out_dir=tmp_path)
    g = VolumeGeometry(size=(48, 40, 12), spacing=(1.0, 1.0, 2.5), origin=(0.0, 0.0, 0.0))
    hu = np.full(g.shape_kji, -850, dtype=np.int16)
    hu[5:8, 15:25, 20:30] = 30
    logic.load(CTVolume(array=hu, geometry=g, path="ward 3.nrrd"), [])
    yield logic, typed.data
    logic.scene.close()


def _run(logic) -> None:
    async def go():
        logic.finetune.start()
        while logic.finetune.job is not None:
            await asyncio.sleep(0.01)
    asyncio.run(go())


def test_save_this_case_writes_the_ct_and_the_corrected_tumour(panel, tmp_path):
    logic, state = panel
    assert Path(state.cases_dir) == tmp_path / "finetune-cases"  # beside the scene bundle by default
    logic.finetune.save_case()
    assert "no tumour segment" in state.error and not Path(state.cases_dir).exists()
    g = Scene.volume_geometry(logic.volume_node)
    tumour = np.zeros(g.shape_kji, dtype=bool)
    tumour[5:8, 16:24, 21:29] = True  # as corrected with the editor
    logic.scene.set_segmentation({"tumor": tumour}, g, node=logic.segmentation_node)
    state.error = ""
    logic.finetune.save_case()
    assert state.error == "" and state.finetune_message.startswith("saved ward_3.nrrd and ward_3.seg.nrrd")
    assert "end_editing" in logic.views.calls  # a pending brush stroke is in the saved case
    ct, mask = read_pair(find_case_pairs(state.cases_dir)[0])
    assert np.array_equal(mask, tumour) and ct.array.shape == g.shape_kji


def test_a_finished_run_shows_the_weights_to_use(panel, tmp_path):
    logic, state = panel
    started = []
    weights = tmp_path / "adapted" / "model.safetensors"
    done = FinetuneOutcome(Outcome.DONE, f"fine-tuning done: use the tumour method resunet with {weights}",
                           weights=weights, method="resunet")
    logic.finetune.job_factory = lambda request: FakeJob(request, done, started)
    state.finetune_model, state.finetune_steps = "resunet", "50"  # the browser's number field sends text
    _run(logic)
    request = started[0].request
    assert (request.model, request.steps, request.cases_dir) == ("resunet", 50, state.cases_dir)
    assert state.finetune_busy is False and state.finetune_progress == 100 and state.error == ""
    assert state.finetune_weights == str(weights) and "resunet" in state.finetune_message


def test_a_failed_or_refused_run_is_one_line_naming_the_panels_control(panel):
    logic, state = panel
    failed = FinetuneOutcome(Outcome.FAILED, "fine-tuning failed",
                             error=InputError("not on its CT's grid", "/cases/b.seg.nrrd"))
    logic.finetune.job_factory = lambda request: FakeJob(request, failed, [])
    _run(logic)
    assert state.error == "/cases/b.seg.nrrd: not on its CT's grid" and state.finetune_weights == ""
    assert state.finetune_busy is False and state.finetune_progress == 0

    def refused(request):
        raise UnavailableError("'dense-highres3dnet' is an ensemble", option="model")
    logic.finetune.job_factory = refused
    logic.finetune.start()
    assert state.error == "Model to adapt: 'dense-highres3dnet' is an ensemble" and logic.finetune.job is None
    state.finetune_steps = "many"
    logic.finetune.start()
    assert state.error.startswith("Steps: 'many'")


def test_cancel_stops_the_run(panel):
    logic, state = panel
    started = []
    never = FinetuneOutcome(Outcome.DONE, "should not finish")
    logic.finetune.job_factory = lambda request: FakeJob(request, never, started)

    async def go():
        logic.finetune.start()
        logic.finetune.cancel()
        while logic.finetune.job is not None:
            await asyncio.sleep(0.01)
    asyncio.run(go())
    assert started[0].cancelled and state.finetune_message.startswith("fine-tuning cancelled")
    assert state.finetune_busy is False and state.finetune_weights == ""
