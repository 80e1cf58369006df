"""``lungtumorrecon batch``: a folder of cases, failures isolated, a summary, resume."""

from __future__ import annotations

import csv
import shutil

from conftest import REPO, run_cli

SAMPLE = REPO / "LungTumorRecon" / "Resources" / "SampleData"


def _summary(out):
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def test_batch_runs_every_case_isolates_failures_and_resumes(tmp_path, data):
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(SAMPLE / "lung1_image.nrrd", cases / "lung1.nrrd")
    shutil.copy(SAMPLE / "lung1_seeds.mrk.json", cases / "lung1.mrk.json")
    shutil.copy(data / "cip_chest64" / "ct-64.nrrd", cases / "chest64.nrrd")
    (cases / "broken.nii.gz").write_bytes(b"not an image")
    (cases / "notes.txt").write_text("not a case")
    out = tmp_path / "out"
    args = ["batch", cases, "--out", out, "--jobs", "2", "--lungs", "threshold", "--recon", "none"]

    first = run_cli(*args)
    assert first.returncode == 3, first.stderr
    rows = _summary(out)
    assert set(rows) == {"lung1", "chest64", "broken"}
    assert rows["broken"]["status"] == "failed" and "not a readable image" in rows["broken"]["error"]
    assert rows["lung1"]["status"] == "ok" and rows["chest64"]["status"] == "ok"
    assert 1.0 < float(rows["lung1"]["tumor volume_ml"]) < 3.0  # from the seeds beside the case
    assert float(rows["lung1"]["tumor 1 longest_axial_diameter_mm"]) > 5
    assert float(rows["lung1"]["tumor 1 mean_diameter_mm"]) > 5 and rows["lung1"]["tumor 1 nodule_type"]
    assert rows["lung1"]["tumor 1 lung_rads_suggestion"] in {"2", "3", "4A", "4B", "4X"}
    assert float(rows["lung1"]["right lung volume_ml"]) > 500 and float(rows["chest64"]["left lung volume_ml"]) > 500
    assert (out / "lung1" / "segmentation.seg.nrrd").is_file() and not (out / "broken").exists()
    assert first.stderr.count("] ") >= 3 and "1 failed" in first.stderr  # the progress bar, case by case

    second = run_cli(*args)  # resume: finished cases are skipped, the failed one is tried again
    assert second.returncode == 3
    rows2 = _summary(out)
    assert rows2["lung1"]["status"] == "skipped" and rows2["chest64"]["status"] == "skipped"
    assert rows2["lung1"]["tumor volume_ml"] == rows["lung1"]["tumor volume_ml"]
    assert "already done" in second.stderr

    (cases / "broken.nii.gz").unlink()
    third = run_cli(*args)
    assert third.returncode == 0, third.stderr
    assert set(_summary(out)) == {"lung1", "chest64"}


def test_batch_refuses_a_bad_folder_or_option_before_any_case(tmp_path, capsys):
    from LungTumorReconLib.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_cli("batch", tmp_path / "missing", "--out", tmp_path / "o")  # the installed command
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("error: ")
    for args in (["batch", empty, "--out", tmp_path / "o"],  # the rest in this process: the same main()
                 ["batch", empty, "--out", tmp_path / "o", "--jobs", "0"],
                 ["batch", empty, "--out", tmp_path / "o", "--scheduler", "local:0"],
                 ["batch", empty, "--out", tmp_path / "o", "--scheduler", "tcp://no where"],
                 ["batch", empty, "--out", tmp_path / "o", "--scheduler", "local:2", "--jobs", "2"],
                 ["batch", empty, "--out", tmp_path / "o", "--tumor", "r3d-dense-unet", "--weights", tmp_path / "x"]):
        code = main(list(map(str, args)))
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (args, err)
    assert not (tmp_path / "o" / "summary.csv").exists()
