"""The one stage session both panels use, errors as data, and the presenter's node roles."""

import numpy as np
import pytest

from LungTumorReconLib.cli import FLAGS
from LungTumorReconLib.errors import InputError, LungTumorReconError, UnavailableError
from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.io.seeds import read_seeds
from LungTumorReconLib.mrml.presenter import ResultPresenter
from LungTumorReconLib.mrml.roles import ROLE_ATTRIBUTE, Role
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.events import Step
from LungTumorReconLib.pipeline.options import OPTION_LABELS, PipelineOptions
from LungTumorReconLib.pipeline.session import Outcome, StageInputs, StageSession
from LungTumorReconLib.pipeline.stages import fraction_at_start, step_weights


@pytest.fixture(scope="module")
def case(small_case):
    ct_path, _, seeds_path, _, _ = small_case
    return read_ct(ct_path), read_seeds(seeds_path)


def _run(session: StageSession, timeout: float = 300):
    events = []
    session.wait(timeout)
    events.append(session.poll())
    return session.finish(), events


def test_a_stage_ends_with_a_scene_update_and_typed_progress(case):
    ct, seeds = case
    session = StageSession()
    session.start("all", StageInputs(ct, seeds), PipelineOptions(lungs="threshold", tumor="gk", recon="mc"))
    assert session.busy
    outcome, events = _run(session)
    assert not session.busy
    assert outcome.status is Outcome.DONE and outcome.message == "Run all: done" and outcome.error is None
    assert events[-1].step is Step.DONE and events[-1].fraction == 1.0
    update = outcome.update
    assert update.replaced_segments == ["right lung", "left lung", "tumor"]
    assert set(update.result.segments) == {"right lung", "left lung", "tumor"}
    assert update.candidates == []  # seeded: no candidates listed


def test_a_failure_is_data_each_front_end_phrases(case, tmp_path):
    ct, seeds = case
    session = StageSession()
    options = PipelineOptions(tumor="r3d-dense-unet", weights=tmp_path / "missing.safetensors")
    session.start("tumor", StageInputs(ct, seeds), options)
    outcome, _ = _run(session, 120)
    assert outcome.status is Outcome.FAILED and outcome.update is None
    error = outcome.error
    assert isinstance(error, InputError) and error.option == "weights" and error.path.endswith("missing.safetensors")
    assert error.describe(FLAGS).startswith("--weights: ")  # the CLI's words
    assert error.describe({"weights": "Weights file"}).startswith("Weights file: ")  # a panel's
    assert error.describe().startswith(OPTION_LABELS["weights"] + ": ")  # in words, by default
    assert "--" not in error.describe() and "\n" not in error.describe()


def test_a_refused_choice_is_refused_before_any_work(case):
    ct, seeds = case
    session = StageSession()
    with pytest.raises(UnavailableError) as refused:
        session.start("all", StageInputs(ct, seeds), PipelineOptions(tumor="no-such-method"))
    assert refused.value.option == "tumor" and not session.busy
    with pytest.raises(InputError, match="unknown stage"):
        session.start("everything", StageInputs(ct, seeds), PipelineOptions())
    with pytest.raises(InputError, match="no contour on slice"):
        session.start("repropagate", StageInputs(ct, seeds), PipelineOptions(), "right lung", 3)


def test_cancel_leaves_the_scene_unchanged(case):
    ct, seeds = case
    session = StageSession()
    session.start("lungs", StageInputs(ct, seeds), PipelineOptions(lungs="snake"))
    session.cancel()
    outcome = session.finish()
    assert outcome.status is Outcome.CANCELLED and outcome.update is None and "unchanged" in outcome.message


def test_progress_weights_follow_the_steps_that_run():
    weights = step_weights(PipelineOptions(lungs="snake", tumor="gk", recon="gan"), False, False)
    assert list(weights) == [Step.LUNGS, Step.TUMOR, Step.RECON]
    starts = [fraction_at_start(step, weights) for step in weights]
    assert starts[0] == 0.0 and starts == sorted(starts) and starts[-1] < 1.0
    assert fraction_at_start(Step.CORRECTION, weights) is None
    assert list(step_weights(PipelineOptions(), True, False, has_correction=True)) == [
        Step.CORRECTION, Step.TUMOR, Step.RECON]


def test_errors_cross_the_process_boundary_whole():
    error = InputError("weights file not found", "/tmp/x.safetensors", option="weights")
    again = LungTumorReconError.from_dict(error.as_dict())
    assert type(again) is InputError and again.describe(FLAGS) == error.describe(FLAGS)
    assert str(again) == "weights file: /tmp/x.safetensors: weights file not found"


def test_the_presenter_finds_its_nodes_by_role_and_ct_never_by_name(case):
    ct, seeds = case
    scene = Scene()
    presenter = ResultPresenter(scene)
    first = scene.add_volume(ct.array, ct.geometry, "first")
    second = scene.add_volume(ct.array, ct.geometry, "second")
    users_table = scene.add_table([{"note": "mine"}], name="Segment volumes")  # the user's, same name
    session = StageSession()
    session.start("lungs", StageInputs(ct, seeds), PipelineOptions(lungs="threshold"))
    outcome, _ = _run(session)
    nodes_first = presenter.apply_update(outcome.update, first)
    nodes_second = presenter.apply_update(outcome.update, second)
    assert nodes_first.volumes_table.GetAttribute(ROLE_ATTRIBUTE) == Role.VOLUMES_TABLE.value
    assert presenter.node_for(Role.VOLUMES_TABLE, first) is nodes_first.volumes_table
    assert presenter.node_for(Role.VOLUMES_TABLE, second) is nodes_second.volumes_table
    # a second run on the first CT replaces its own table only
    again = presenter.apply_update(outcome.update, first, nodes_first.segmentation)
    tables = scene.nodes_by_class("vtkMRMLTableNode")
    assert users_table in tables and nodes_second.volumes_table in tables
    assert nodes_first.volumes_table not in tables and again.volumes_table in tables
    assert Scene.table_rows(users_table) == [{"note": "mine"}]
    masks = scene.segment_masks(again.segmentation, ct.geometry)
    assert np.array_equal(masks["right lung"], outcome.update.result.segments["right lung"])
