"""The follow-up for the panels (issue 24): FollowupJob runs a tiny synthetic pair end to end in
a real child process, Cancel leaves nothing, bad input is refused at start; and the finished
folder in a real MRML scene (ResultPresenter.load_followup), as both panels load it."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from conftest import REPO  # noqa: F401  (puts the library and LungTumorReconDev on sys.path)

from LungTumorReconDev.followup_pairs import synthetic_followup_pair
from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.followup.job import FollowupJob, FollowupRequest
from LungTumorReconLib.io.ct import read_ct, write_image
from LungTumorReconLib.io.seeds import Seed, read_seeds, seeds_to_markups_json
from LungTumorReconLib.pipeline.session import Outcome

# test_followup_registration.py's small pair: 112 x 112 x 40 at 3 mm, a doubled tumour
GRID = dict(size=(112, 112, 40), spacing=(3.0, 3.0, 3.0))
MOTION = dict(shift_mm=(8.0, -6.0, 0.0), rotation_deg=4.0, breathing_mm=8.0)
FILES = {"followup.json", "scene.mrb", "followup.png", "baseline.seg.nrrd", "followup.seg.nrrd", "registration.h5"}


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """(pair, folder with baseline.nrrd, followup.nrrd and seeds.mrk.json)."""
    pair = synthetic_followup_pair(1, 2.0, **GRID, **MOTION)
    folder = tmp_path_factory.mktemp("pair")
    write_image(pair.baseline.array, pair.baseline.geometry, folder / "baseline.nrrd")
    write_image(pair.followup.array, pair.followup.geometry, folder / "followup.nrrd")
    (folder / "seeds.mrk.json").write_text(json.dumps(seeds_to_markups_json([Seed("tumor", pair.seed_lps)])))
    return pair, folder


def _request(folder, out, **kwargs) -> FollowupRequest:
    return FollowupRequest(str(folder / "baseline.nrrd"), str(folder / "followup.nrrd"), str(out),
                           seeds=str(folder / "seeds.mrk.json"), dates=["2026-01-01", "2026-04-01"],
                           deformable=False, **kwargs)


@pytest.fixture(scope="module")
def finished(pair_files, tmp_path_factory):
    """The pair through a real FollowupJob: (outcome, the progress fractions seen, the job folder)."""
    _, folder = pair_files
    job = FollowupJob(_request(folder, tmp_path_factory.mktemp("run") / "out")).start()
    fractions, deadline = [], time.time() + 120
    while job.running and time.time() < deadline:
        fractions.append(job.progress().fraction)
        time.sleep(0.2)
    return job.finish(), fractions, job.folder


def test_a_tiny_pair_runs_end_to_end_in_a_child_process(finished):
    outcome, fractions, job_folder = finished
    assert outcome.status is Outcome.DONE, outcome.error
    assert {p.name for p in outcome.out_dir.iterdir()} == FILES
    assert outcome.report == json.loads((outcome.out_dir / "followup.json").read_text())
    assert [t["tracking_id"] for t in outcome.report["tumors"]] == ["tumor 1"] and outcome.report["dates"]["days"] == 90
    lines = outcome.message.splitlines()
    assert lines[0] == f"follow-up done: {outcome.out_dir}" and lines[1].startswith("tumor 1: ")
    assert lines[-1].startswith("RECIST 1.1: ") and lines[-1].endswith("Not for clinical use.")
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)  # it moved, never back
    assert not job_folder.exists()  # finish removes the job folder


def test_cancel_stops_the_child_and_leaves_nothing(pair_files, tmp_path):
    _, folder = pair_files
    out = tmp_path / "out"
    older = tmp_path / ".out.partial-older"  # another run's, before this one
    older.mkdir()
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    job = FollowupJob(_request(folder, out)).start()
    deadline = time.time() + 60
    while job.running and not job.poll().log and time.time() < deadline:  # until it has begun its work
        time.sleep(0.05)
    (tmp_path / ".out.partial-x1y2").mkdir()  # as write_followup's partial_folder names its folder
    job.cancel()
    assert not job.running
    outcome = job.finish()
    assert outcome.status is Outcome.CANCELLED and outcome.out_dir is None and outcome.message.startswith(
        "follow-up cancelled")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-older"] and not job.folder.exists()


def test_bad_input_is_refused_at_start_without_a_child(pair_files, tmp_path):
    from LungTumorReconLib.followup.pipeline import DEFAULT_FOLLOWUP_LUNGS

    _, folder = pair_files
    assert FollowupRequest("a", "b", "c").lungs == DEFAULT_FOLLOWUP_LUNGS  # the same default, not imported
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    cases = [
        (dict(baseline=str(tmp_path / "missing.nrrd")), InputError, "baseline", "no such file"),
        (dict(seeds=str(tmp_path / "none.mrk.json")), InputError, "seeds_path", "no such file"),
        (dict(out_dir=str(full)), InputError, None, "not empty"),
        (dict(dates=["2026-04-01", "2026-01-01"]), InputError, "dates", "before the baseline date"),
        (dict(dates=["2026-01-01", "April"]), InputError, "dates", "YYYY-MM-DD"),
        (dict(lungs="none"), UnavailableError, "lungs", "registers the two CTs on their lungs"),
        (dict(tumor="magic"), UnavailableError, "tumor", "unknown method"),
    ]
    for change, error, option, text in cases:
        request = _request(folder, tmp_path / "out")
        for key, value in change.items():
            setattr(request, key, value)
        job = FollowupJob(request)
        with pytest.raises(error, match=text) as raised:
            job.start()
        assert raised.value.option == option and job._process is None and not job.folder.exists(), change
    assert not (tmp_path / "out").exists()


def test_the_finished_folder_in_the_scene(finished, pair_files, tmp_path):
    """What both panels do after success, on a real MRML scene: the files a job reads written
    from the scene, then the folder loaded back onto the same volume nodes."""
    from LungTumorReconLib.mrml.followup_scene import GROWTH_COLUMNS
    from LungTumorReconLib.mrml.presenter import ResultPresenter
    from LungTumorReconLib.mrml.roles import Role
    from LungTumorReconLib.mrml.scene import Scene

    outcome, _, _ = finished
    pair, folder = pair_files
    scene = Scene()
    try:
        presenter = ResultPresenter(scene)
        base = scene.add_volume(pair.baseline.array, pair.baseline.geometry, name="baseline")
        fol = scene.add_volume(pair.followup.array, pair.followup.geometry, name="follow-up")
        seeds = scene.add_seeds([Seed("tumor", pair.seed_lps)])
        ct_path, fol_path, seeds_path = presenter.write_followup_inputs(base, fol, tmp_path / "inputs", seeds)
        assert np.array_equal(read_ct(ct_path).array, pair.baseline.array) and fol_path.name == "followup.nrrd"
        assert np.allclose(read_seeds(seeds_path)[0].lps, pair.seed_lps)
        with pytest.raises(InputError, match="same CT"):
            presenter.write_followup_inputs(base, base, tmp_path / "inputs")

        nodes = presenter.load_followup(outcome.out_dir, base, fol)
        assert scene.segment_names(nodes.baseline_segmentation) == ["right lung", "left lung", "tumor 1"]
        assert nodes.followup_segmentation.GetParentTransformNode() is nodes.transform  # aligned on the baseline
        assert fol.GetParentTransformNode() is nodes.transform and base.GetParentTransformNode() is None
        assert presenter.node_for(Role.FOLLOWUP_TABLE, base) is nodes.table
        entry = outcome.report["tumors"][0]
        row = nodes.rows[0]
        assert list(row) == [key for key, _ in GROWTH_COLUMNS] and Scene.table_rows(nodes.table) == nodes.rows
        assert row["tumor"] == "tumor 1" and row["baseline_ml"] == f"{entry['baseline']['volume_ml']:.2f}"
        assert nodes.recist.startswith("RECIST 1.1: ") and "not for clinical use" in nodes.recist.lower()
        before, after = nodes.centres_ras[0]
        assert np.allclose(before, lps_to_ras(np.array(entry["baseline"]["centroid_lps"])))
        # the follow-up centre as the aligned view shows it: back near the baseline's
        assert np.linalg.norm(np.subtract(after, before)) < 6.0
        assert np.linalg.norm(np.subtract(lps_to_ras(np.array(entry["followup"]["centroid_lps"])), before)) > 6.0
        presenter.load_followup(outcome.out_dir, base, fol)  # again: replaces, does not pile up
        assert len(scene.nodes_by_class("vtkMRMLSegmentationNode")) == 2
        assert len(scene.nodes_by_class("vtkMRMLTableNode")) == 1
        assert len(presenter.nodes_for(Role.FOLLOWUP_TRANSFORM)) == 1
    finally:
        scene.close()
