"""The web panel's logic with a fake stage runner (as SlicerNNUnet tests its Widget): what the
panel shows for each way a stage can end, on a real MRML scene and trame's real typed state.
The views are a recording stand-in: trame-slicer's views need a browser (test_web_app.py)."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext

import numpy as np
import pytest

from LungTumorReconLib.errors import UnavailableError
from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.io.seeds import read_seeds
from LungTumorReconLib.mrml.roles import Role
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.run import check_options, run_on_volume
from LungTumorReconLib.pipeline.session import Outcome, SceneUpdate, StageOutcome, candidates_of
from LungTumorReconLib.pipeline.stages import Stage, as_stage

pytest.importorskip("trame_server")


class FakeRunner:
    """A StageRunner that 'runs' for two polls and ends as told."""

    def __init__(self, outcome_for):
        self.outcome_for, self.stage, self.started, self._polls = outcome_for, None, [], 0

    @property
    def busy(self) -> bool:
        return self.stage is not None

    @property
    def running(self) -> bool:
        return self.busy and self._polls < 2

    def start(self, stage, inputs, options, correction_lung=None, correction_slice=None) -> None:
        self.stage, self._polls = as_stage(stage), 0
        self.started.append((self.stage, inputs, options))

    def poll(self) -> ProgressEvent:
        self._polls += 1
        return ProgressEvent(Step.LUNGS, "segmenting the lungs", 0.5)

    def cancel(self) -> None:
        pass

    def finish(self) -> StageOutcome:
        outcome = self.outcome_for(self.stage, self.started[-1][1])
        self.stage = None
        return outcome

    def cleanup(self) -> None:
        self.stage = None


class RecordingViews:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args):
            self.calls.append(name)
            return nullcontext() if name == "editor_undo_step" else None
        return record


def _panel(case, runner):
    from trame.app import get_server
    from trame_server.utils.typed_state import TypedState

    from LungTumorReconWeb.logic import PanelLogic
    from LungTumorReconWeb.state import NAMESPACE, PanelState

    server = get_server(f"ltr-test-{id(runner)}", client_type="vue3")
    typed = TypedState(server.state, PanelState, namespace=NAMESPACE)
    views = RecordingViews()
    panel = PanelLogic(typed, Scene(), views, out_dir=".", session=runner)
    ct, seeds = case
    panel.load(ct, seeds)
    return panel, typed.data, views


def _run(panel, stage: str) -> None:
    async def go():
        panel.start_stage(stage)
        while panel.session.busy:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)
    asyncio.run(go())


@pytest.fixture(scope="module")
def case(small_case):
    ct_path, _, seeds_path, _, _ = small_case
    return read_ct(ct_path), read_seeds(seeds_path)


def test_a_finished_stage_fills_the_panel(case, monkeypatch):
    import LungTumorReconWeb.logic as logic

    monkeypatch.setattr(logic, "POLL_S", 0.01)

    results = []

    def done(stage, inputs):
        options = PipelineOptions(lungs="threshold", tumor="gk", recon="none")
        result = run_on_volume(inputs.ct, inputs.seeds, options, check_options(options))
        results.append(result)
        update = SceneUpdate(result, ["right lung", "left lung", "tumor"], candidates_of(result), ["a warning"])
        return StageOutcome(stage, Outcome.DONE, "Run all: done", update=update)

    panel, state, views = _panel(case, FakeRunner(done))
    _run(panel, "all")
    started_stage, inputs, options = panel.session.started[-1]
    assert started_stage is Stage.ALL and inputs.segments == {} and len(inputs.seeds) == len(case[1])
    assert options.lungs == state.lungs  # the one conversion from the panel's state
    assert state.busy is False and state.progress == 100 and state.message == "Run all: done"
    assert state.error == "" and state.warnings == ["a warning"]
    assert [r["segment"] for r in state.volume_rows] == ["right lung", "left lung", "tumor"]
    assert state.tumor_rows and state.tumor_rows[0]["measure"] == "volume (mL)"
    assert "editor_undo_step" in views.calls and "refresh_editor" in views.calls
    assert panel.presenter.node_for(Role.TUMORS_TABLE, panel.volume_node) is not None
    masks = panel.scene.segment_masks(panel.segmentation_node, case[0].geometry)
    assert masks["tumor"].any() and np.array_equal(masks["tumor"], results[0].segments["tumor"])


def test_a_failed_stage_names_the_panels_control_and_changes_nothing(case, monkeypatch):
    import LungTumorReconWeb.logic as logic

    monkeypatch.setattr(logic, "POLL_S", 0.01)

    def failed(stage, inputs):
        error = UnavailableError("'x' is not available yet", option="tumor")
        return StageOutcome(stage, Outcome.FAILED, "Tumour: failed", error=error)

    panel, state, views = _panel(case, FakeRunner(failed))
    _run(panel, "tumor")
    assert state.busy is False and state.progress == 0 and state.message == "Tumour: failed"
    assert state.error == "Tumour method: 'x' is not available yet"  # the control's label, not --tumor
    assert state.volume_rows == [] and "editor_undo_step" not in views.calls


def test_a_refused_start_is_one_line_in_the_panel(case):
    def never(stage, inputs):
        raise AssertionError("no stage should run")

    panel, state, _ = _panel(case, FakeRunner(never))
    panel.session.start = lambda *a, **k: (_ for _ in ()).throw(UnavailableError("cuda: no GPU", option="device"))
    panel.start_stage("lungs")
    assert state.error == "Device: cuda: no GPU" and state.busy is False
