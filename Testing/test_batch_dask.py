"""``lungtumorrecon batch --scheduler``: a cohort on real Dask processes (a ``dask scheduler`` and
two bare ``dask worker`` on loopback), with a worker killed during a case and a scheduler lost.

The cohort is small on purpose (three cropped copies of cip_chest64, about 5 s a case, and one
bad file), so that the file runs in about a minute on two cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest

from conftest import read_ct, run_cli, write_image

DASK = Path(sys.executable).parent / "dask"
METHODS = ["--lungs", "threshold", "--recon", "none"]  # the automatic gk tumour: a full run, in seconds
GOOD = ["full", "lower", "narrow"]


def _summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]  # each `dask worker` (its nanny), leading a process group of its own

    def worker_addresses(self) -> dict[int, str]:
        """The worker processes' ids (children of the nannies) and their addresses."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return {pid: address for address, pid in client.run(os.getpid).items()}


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def dask_processes(log_dir: Path, workers: int = 2, scheduler_env: dict | None = None):
    """``dask scheduler`` on a free loopback port (``scheduler_env``: Dask settings for it) and
    ``workers`` bare ``dask worker ADDRESS``; every process group is killed at the end, whatever
    happened."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        with open(log_dir / f"{name}.log", "w") as log:
            started.append(subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, **(env or {})}))
        return started[-1]

    try:
        scheduler = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                          env=scheduler_env)
        nannies = [start(f"worker{i}", "worker", address) for i in range(workers)]
        cluster = DaskProcesses(address, scheduler, nannies)
        deadline = time.monotonic() + 120
        while len(cluster.worker_addresses()) < workers:
            assert time.monotonic() < deadline, (log_dir / "worker0.log").read_text()
            time.sleep(0.5)
        yield cluster
    finally:
        for process in started:
            _kill_group(process)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, data) -> Path:
    """Three small cases cut from cip_chest64 (different crops: different results) and one bad file."""
    from LungTumorReconLib.coordinates import VolumeGeometry

    folder = tmp_path_factory.mktemp("cohort")
    ct = read_ct(data / "cip_chest64" / "ct-64.nrrd")
    g = ct.geometry
    crops = {"full": (slice(None), slice(None), slice(None)), "lower": (slice(6, None), slice(None), slice(None)),
             "narrow": (slice(None), slice(3, -3), slice(None))}
    for name, crop in crops.items():
        start_kji = [s.start or 0 for s in crop]
        origin = g.kji_to_lps(np.array(start_kji, dtype=float))
        shape = ct.array[crop].shape
        geometry = VolumeGeometry(size=(shape[2], shape[1], shape[0]), spacing=g.spacing,
                                  origin=tuple(float(v) for v in origin), direction=g.direction)
        write_image(ct.array[crop], geometry, folder / f"{name}.nrrd")
    (folder / "broken.nii.gz").write_bytes(b"not an image")
    return folder


def _running_case(nannies: list[subprocess.Popen], skip: str, timeout: float = 120.0):
    """The first nanny whose worker runs a case (other than ``skip``), and that case's process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for nanny in nannies:
            for child in psutil.Process(nanny.pid).children(recursive=True):
                try:
                    cmd = child.cmdline()
                except psutil.NoSuchProcess:
                    continue
                if "LungTumorReconLib.cli" in cmd and "run" in cmd and skip not in cmd[cmd.index("run") + 1]:
                    return nanny, child
        time.sleep(0.1)
    raise AssertionError("no case started on a worker")


def _case_name(process_cmd: list[str]) -> str:
    return Path(process_cmd[process_cmd.index("run") + 1]).name.split(".")[0]


def _same_results(a: Path, b: Path) -> None:
    """report.json equal but for timings; segmentation.seg.nrrd byte for byte."""
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    ra.pop("timings_s"), rb.pop("timings_s")
    assert ra == rb, a.name
    assert (a / "segmentation.seg.nrrd").read_bytes() == (b / "segmentation.seg.nrrd").read_bytes(), a.name


def test_a_worker_killed_during_a_case_and_the_same_results_as_jobs(tmp_path, cohort):
    out = tmp_path / "dask"
    exe = Path(sys.executable).parent / "lungtumorrecon"
    with dask_processes(tmp_path) as cluster:
        addresses = cluster.worker_addresses()
        batch = subprocess.Popen([str(exe), "batch", str(cohort), "--out", str(out), "--scheduler", cluster.address,
                                  *METHODS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        nanny, case = _running_case(cluster.workers, skip="broken")
        killed = addresses[case.ppid()]  # the worker process: the case's parent
        name = _case_name(case.cmdline())
        time.sleep(1.0)  # in the middle of the case (one takes 3 s or more)
        assert case.is_running() and case.pid != os.getpgid(nanny.pid)
        assert os.getpgid(case.pid) == case.pid  # its own process group: not killed with the worker's...
        _kill_group(nanny)
        assert not (out / name / "report.json").exists()
        _, alive = psutil.wait_procs([case], timeout=15)
        assert alive == []  # ...but it stops when it sees its worker gone
        _, stderr = batch.communicate(timeout=400)

    assert batch.returncode == 3, stderr
    rows = _summary(out)
    assert set(rows) == {*GOOD, "broken"}
    assert rows["broken"]["status"] == "failed" and "not a readable image" in rows["broken"]["error"]
    assert all(rows[n]["status"] == "ok" for n in GOOD), rows
    retried = [line for line in stderr.splitlines() if f"  {name}: done in" in line]
    assert len(retried) == 1 and " on tcp://" in retried[0] and killed not in retried[0], stderr  # another worker
    assert stderr.count("] ") == 4 and "4/4 (1 failed)" in stderr  # the progress bar counts cases
    assert not list(out.glob(".*partial*"))  # the killed run's half-written folder is not left behind

    jobs = tmp_path / "jobs"
    local = run_cli("batch", cohort, "--out", jobs, "--jobs", "2", *METHODS)
    assert local.returncode == 3, local.stderr
    assert {k: v["status"] for k, v in _summary(jobs).items()} == {k: v["status"] for k, v in rows.items()}
    for n in GOOD:
        _same_results(out / n, jobs / n)


@pytest.mark.long
def test_a_case_whose_worker_dies_every_time_is_failed_and_a_rerun_runs_it(tmp_path, cohort):
    """With no worker death allowed per task (``allowed-failures`` 0), Dask gives up on the case
    at once (``KilledWorker``): it is reported failed with why, the others go on, and a rerun
    runs it again."""
    two = tmp_path / "two"
    two.mkdir()
    for name in ("full", "lower"):
        shutil.copy(cohort / f"{name}.nrrd", two / f"{name}.nrrd")
    out = tmp_path / "out"
    exe = Path(sys.executable).parent / "lungtumorrecon"
    with dask_processes(tmp_path, scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}) as cluster:
        batch = subprocess.Popen([str(exe), "batch", str(two), "--out", str(out), "--scheduler", cluster.address,
                                  *METHODS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        nanny, case = _running_case(cluster.workers, skip="none")
        name = _case_name(case.cmdline())
        _kill_group(nanny)
        _, stderr = batch.communicate(timeout=400)
    assert batch.returncode == 3, stderr
    rows = _summary(out)
    assert rows[name]["status"] == "failed" and "its Dask worker died each time it ran it" in rows[name]["error"]
    [other] = {"full", "lower"} - {name}
    assert rows[other]["status"] == "ok" and (out / other / "report.json").is_file()
    assert not (out / name).exists() and not list(out.glob(".*partial*"))
    again = run_cli("batch", two, "--out", out, "--jobs", "1", *METHODS)  # resume: only the failed case runs
    assert again.returncode == 0, again.stderr
    assert _summary(out)[name]["status"] == "ok" and (out / name / "report.json").is_file()


def test_a_lost_scheduler_stops_the_batch_with_one_error_and_a_rerun_resumes(tmp_path, cohort):
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in GOOD:
        (cases / f"{name}.nrrd").write_bytes((cohort / f"{name}.nrrd").read_bytes())
    out = tmp_path / "out"
    with dask_processes(tmp_path, workers=1) as cluster:
        batch = subprocess.Popen([str(Path(sys.executable).parent / "lungtumorrecon"), "batch", str(cases), "--out",
                                  str(out), "--scheduler", cluster.address, *METHODS],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not (out / "summary.csv").is_file():  # a first case is done
            assert time.monotonic() < deadline and batch.poll() is None
            time.sleep(0.2)
        _kill_group(cluster.scheduler)
        _, stderr = batch.communicate(timeout=120)
        done_before = {n for n, row in _summary(out).items() if row["status"] == "ok"}
        for nanny in cluster.workers:  # its running cases stop with it
            _kill_group(nanny)

    assert batch.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    assert "lost the Dask scheduler" in errors[0] and "resume" in errors[0]
    assert not any(line.startswith(("Traceback", "warning:")) or " - distributed." in line
                   for line in stderr.splitlines()), stderr  # no Dask log lines either
    assert done_before

    rerun = run_cli("batch", cases, "--out", out, "--scheduler", "local:1", *METHODS)
    assert rerun.returncode == 0, rerun.stderr
    rows = _summary(out)
    assert {n for n, row in rows.items() if row["status"] == "skipped"} >= done_before
    assert set(rows) == set(GOOD) and all(row["status"] in ("ok", "skipped") for row in rows.values())
    assert "Dask LocalCluster: 1 workers" in rerun.stderr  # sized from the memory estimate (next test)


def test_local_workers_take_no_more_cases_than_fit_in_memory(cohort):
    from LungTumorReconLib.pipeline.batch import find_cases
    from LungTumorReconLib.pipeline.cluster import case_peak_bytes, local_shape
    from LungTumorReconLib.pipeline.memory import GB, estimate_peak_bytes
    from LungTumorReconLib.pipeline.options import PipelineOptions

    options = PipelineOptions(lungs="threshold", recon="none")
    peak = case_peak_bytes(find_cases(cohort), options)
    assert peak == estimate_peak_bytes(64 * 64 * 79, "threshold", "gk", "none", seeded=False)  # the largest crop
    tight = local_shape(2, 2 * GB, cpus=8, available=6 * GB)  # 3 GB each: one 2 GB case at a time
    assert (tight.threads, tight.memory_limit, tight.case_threads) == (1, 2 * GB, 4)
    roomy = local_shape(2, 2 * GB, cpus=8, available=64 * GB)  # memory for 16: the cores hold 4 per worker
    assert (roomy.threads, roomy.memory_limit, roomy.case_threads) == (4, 8 * GB, 1)
    small = local_shape(4, 3 * GB, cpus=2, available=4 * GB)  # too small for one: each case refuses itself
    assert (small.threads, small.case_threads) == (1, 1)


def test_unreachable_scheduler_is_one_error_line(tmp_path, cohort):
    run = run_cli("batch", cohort, "--out", tmp_path / "o", "--scheduler", f"tcp://127.0.0.1:{_free_port()}", *METHODS)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("error: --scheduler: cannot reach")
    assert not (tmp_path / "o" / "summary.csv").exists()


_WRITING_CHILD = """
import sys, time
from LungTumorReconLib.io.output_folder import partial_folder
from LungTumorReconLib.pipeline.job import stop_with_parent
stop_with_parent()
with partial_folder(sys.argv[1]) as folder:
    (folder / "half.json").write_text("{")
    time.sleep(120)
"""
_PARENT = """
import os, subprocess, sys, time
env = dict(os.environ, LTR_PARENT_PID=str(os.getpid()))
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=env, start_new_session=True)
time.sleep(120)
"""


def test_a_case_whose_worker_dies_while_it_writes_leaves_no_partial_folder(tmp_path):
    """The killed worker of the first test is usually killed before its case writes; here the
    parent dies while its child is writing its output folder."""
    target = tmp_path / "case"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _WRITING_CHILD, str(target)])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".case.partial-*/half.json")):
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.1)
    child = psutil.Process(parent.pid).children()[0]
    parent.kill()
    parent.wait()
    _, alive = psutil.wait_procs([child], timeout=15)
    assert alive == []
    assert list(tmp_path.iterdir()) == []  # neither the partial folder nor the case's


def test_scheduler_addresses_are_checked_before_any_case():
    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.pipeline.cluster import parse_scheduler

    for address in ("tcp://10.0.0.5:8786", "tcp://node-1.cluster:8786", "tcp://[::1]:8786", "tls://[fe80::1]:8786",
                    "node-1"):
        assert parse_scheduler(address) == address
    assert parse_scheduler("local:3") == 3
    for bad in ("tcp://no where", "tcp://[::1:8786", "tcp://a:b:8786", "local:0", "local:x", "tcp://[zz::1]:8786"):
        with pytest.raises(InputError):
            parse_scheduler(bad)
