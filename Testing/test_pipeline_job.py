"""The pipeline in a child process (the interactive front ends' runner): same result as in
process, progress, Cancel, one-line errors, and what each panel button runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from LungTumorReconLib.io.ct import read_ct
from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.lungs.correction import LungCorrection
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.run import check_options, run_on_volume
from LungTumorReconLib.pipeline.job import PipelineJob
from LungTumorReconLib.pipeline.stages import plan_stage
from LungTumorReconLib.io.seeds import read_seeds


@pytest.fixture(scope="module")
def case(small_case):
    ct_path, _, seeds_path, _, _ = small_case
    return read_ct(ct_path), read_seeds(seeds_path)


def _finish(job: PipelineJob, timeout: float = 300) -> list[float]:
    fractions = []
    deadline = time.time() + timeout
    while job.running and time.time() < deadline:
        time.sleep(0.05)
        fractions.append(job.poll().fraction)
    job.wait(10)
    fractions.append(job.poll().fraction)
    return fractions


def test_job_gives_the_in_process_result_with_rising_progress(case):
    ct, seeds = case
    options = PipelineOptions(lungs="threshold", tumor="gk", recon="interp-mc")
    job = PipelineJob(plan_stage("all", ct, seeds, options)[0]).start()
    try:
        fractions = _finish(job)
        assert job.error is None
        got = job.result()
        expected = run_on_volume(ct, seeds, PipelineOptions(lungs="threshold", tumor="gk", recon="interp-mc"),
                                 check_options(PipelineOptions(lungs="threshold", tumor="gk")))
        assert list(got.segments) == list(expected.segments)
        assert all(np.array_equal(got.segments[n], expected.segments[n]) for n in expected.segments)
        assert got.tumors[0].volume_ml == expected.tumors[0].volume_ml
        assert got.surface_lps.GetNumberOfPoints() == expected.surface_lps.GetNumberOfPoints()
        assert got.ct is ct  # the caller's own CT, not a copy from the child
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert "segmenting the lungs (threshold)" in job.status.log
    finally:
        job.cleanup()
    assert not job.folder.exists()


def test_cancel_stops_the_child_at_once_and_gives_no_result(case):
    ct, seeds = case
    job = PipelineJob(plan_stage("all", ct, seeds, PipelineOptions(lungs="snake"))[0]).start()
    try:
        time.sleep(1.0)
        t = time.perf_counter()
        job.cancel()
        assert time.perf_counter() - t < 2.0 and not job.running
        assert job.error is None  # cancelled is not an error
        with pytest.raises(LungTumorReconError, match="cancelled"):
            job.result()
    finally:
        job.cleanup()


def _job_processes(folder: Path) -> list[int]:
    """The live processes whose command line names the job folder (a zombie's is empty)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(folder).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def _until(condition, timeout: float) -> bool:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


posix_proc = pytest.mark.skipif(os.name != "posix" or not Path("/proc/self/cmdline").exists(),
                                reason="reads the process table from /proc")
LONG_JOB_OPTIONS = PipelineOptions(lungs="snake", tumor="none", recon="none")


@pytest.fixture(scope="module")
def long_ct_path(tmp_path_factory) -> Path:
    """The bundled sample three times over along z: its snake lungs take half a minute here, so
    a process still at work seconds after Cancel is seen, not finished by chance."""
    from LungTumorReconLib.coordinates import VolumeGeometry
    from LungTumorReconLib.io.ct import write_image
    from LungTumorReconLib.resources import resource_path

    sample = read_ct(resource_path("SampleData", "lung1_image.nrrd"))
    g = sample.geometry
    geometry = VolumeGeometry((g.size[0], g.size[1], 3 * g.size[2]), g.spacing, g.origin, g.direction)
    path = tmp_path_factory.mktemp("long") / "long.nrrd"
    write_image(np.concatenate([sample.array] * 3), geometry, path)
    return path


@posix_proc
def test_cancel_ends_the_python_a_launcher_started(long_ct_path, tmp_path):
    """Desktop Slicer's PythonSlicer is the CTK app launcher: it runs the real Python as its
    child and waits for it. This stand-in does the same; after Cancel neither may remain."""
    launcher = tmp_path / "PythonSlicer"
    launcher.write_text(f"#!{sys.executable}\nimport subprocess, sys\n"
                        f"sys.exit(subprocess.call([{sys.executable!r}, *sys.argv[1:]]))\n")
    launcher.chmod(0o755)
    inputs = plan_stage("all", read_ct(long_ct_path), [], LONG_JOB_OPTIONS)[0]
    job = PipelineJob(inputs, python=str(launcher)).start()
    try:
        assert _until(lambda: len(_job_processes(job.folder)) == 2, 30), "the launcher and its Python"
        assert _until(lambda: job.poll().log, 60)  # the real Python is at work
        assert job.running
        job.cancel()
        assert _until(lambda: not _job_processes(job.folder), 2), _job_processes(job.folder)
        assert job.cancelled and job.error is None
    finally:
        job.cleanup()


@posix_proc
def test_the_job_stops_when_its_front_end_dies(long_ct_path, tmp_path):
    """Slicer killed or crashed (no cleanup runs): the job notices within seconds and stops."""
    front_end = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent / 'LungTumorRecon')!r})\n"
        "from LungTumorReconLib.io.ct import read_ct\n"
        "from LungTumorReconLib.pipeline.options import PipelineOptions\n"
        "from LungTumorReconLib.pipeline.job import PipelineJob\n"
        "from LungTumorReconLib.pipeline.stages import plan_stage\n"
        f"inputs = plan_stage('all', read_ct({str(long_ct_path)!r}), [],\n"
        "                    PipelineOptions(lungs='snake', tumor='none', recon='none'))[0]\n"
        f"job = PipelineJob(inputs, work_dir={str(tmp_path)!r}).start()\n"
        "print(job.folder, flush=True)\n"
        "time.sleep(600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", front_end], stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(process.stdout.readline().strip())
        assert _until(lambda: len(_job_processes(folder)) == 1, 30)
        time.sleep(2.0)  # at work now
        process.kill()
        process.wait()
        assert _until(lambda: not _job_processes(folder), 5), "the job outlived its front end"
    finally:
        process.kill()
        process.wait()


def test_a_refused_option_comes_back_as_one_line(case, tmp_path):
    ct, seeds = case
    options = PipelineOptions(tumor="r3d-dense-unet", weights=tmp_path / "missing.safetensors")
    job = PipelineJob(plan_stage("tumor", ct, seeds, options)[0]).start()
    try:
        _finish(job, 120)
        assert job.error is not None and "weights file not found" in job.error and "\n" not in job.error
        with pytest.raises(LungTumorReconError, match="weights file not found"):
            job.result()
    finally:
        job.cleanup()


def test_each_button_runs_its_stage_and_replaces_only_its_segments(case):
    ct, seeds = case
    shape = ct.array.shape
    lungs = {"right lung": np.zeros(shape, bool), "left lung": np.zeros(shape, bool)}
    lungs["right lung"][10:20, 20:40, 10:30] = True
    lungs["left lung"][10:20, 20:40, 40:60] = True
    options = PipelineOptions(lungs="snake", tumor="gk", recon="gan")

    inputs, replaced = plan_stage("lungs", ct, seeds, options, lungs)
    assert (inputs.options.tumor, inputs.options.recon, replaced) == ("none", "none", ["right lung", "left lung"])
    inputs, replaced = plan_stage("tumor", ct, seeds, options, lungs)
    assert inputs.lungs is not None and inputs.options.lungs == "none" and replaced == ["tumor"]
    inputs, replaced = plan_stage("tumor", ct, seeds, options, {})  # no lungs yet: found by the lung method
    assert inputs.lungs is None and inputs.options.lungs == "snake" and "tumor" in replaced
    with pytest.raises(InputError, match="no tumor segment to reconstruct"):
        plan_stage("recon", ct, seeds, options, lungs)
    tumour = np.zeros(shape, bool)
    tumour[14:16, 30:33, 20:23] = True
    inputs, replaced = plan_stage("recon", ct, seeds, options, {**lungs, "tumor": tumour})
    assert inputs.tumor_mask is tumour and inputs.options.recon == "gan" and replaced == []
    correction = LungCorrection("left lung", 15, lungs["left lung"][15])
    inputs, replaced = plan_stage("repropagate", ct, seeds, options, lungs, correction)
    assert inputs.correction is correction and replaced == ["left lung"]
    with pytest.raises(InputError, match="re-propagation needs"):
        plan_stage("repropagate", ct, seeds, options, {}, correction)
    with pytest.raises(InputError, match="unknown stage"):
        plan_stage("everything", ct, seeds, options)


def test_repropagation_in_the_child_changes_only_the_corrected_lung(case):
    ct, seeds = case
    first = run_on_volume(ct, seeds, PipelineOptions(lungs="snake", tumor="none", recon="none"), "cpu")
    k = int(np.argmax(first.segments["right lung"].sum(axis=(1, 2))))
    corrected = first.segments["right lung"][k].copy()
    rows = np.flatnonzero(corrected.any(axis=1))
    corrected[rows[: len(rows) // 3]] = False  # the user cuts off the lung's front third on this slice
    inputs, replaced = plan_stage("repropagate", ct, seeds, PipelineOptions(), first.segments,
                                  LungCorrection("right lung", k, corrected))
    job = PipelineJob(inputs).start()
    try:
        _finish(job)
        got = job.result()
    finally:
        job.cleanup()
    assert replaced == ["right lung"]
    assert np.array_equal(got.segments["left lung"], first.segments["left lung"])
    assert np.array_equal(got.segments["right lung"][k], corrected)
    assert not np.array_equal(got.segments["right lung"], first.segments["right lung"])
    assert got.methods["lungs"]["correction"]["slice"] == k


def test_the_child_refuses_a_folder_without_a_job(tmp_path):
    from LungTumorReconLib.pipeline.job import main

    assert main([str(tmp_path)]) == 2
    assert main([str(Path(tmp_path) / "x"), "y"]) == 2
