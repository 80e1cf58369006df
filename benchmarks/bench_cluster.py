"""batch on a Dask cluster against ``--jobs`` on the same machine (issue 26: Dask adds at most 2 s
a case, with 6 cases).

Six cases (the bundled sample CT, 512 x 512 x 48, and five crops of it, each with the sample's
tumour seed) run three ways with ``--lungs threshold --tumor gk --recon none``: ``batch --jobs
2``; ``batch --scheduler local:2`` (a LocalCluster started and stopped by the batch, sized from
the memory estimate); and ``batch --scheduler tcp://...`` on a ``dask scheduler`` and two bare
``dask worker --nthreads 1`` already running (the cluster's start not counted). Each batch's
wall time, its overhead per case over ``--jobs 2``, and the peak resident memory of all its
processes (batch, workers, cases; sampled every 0.2 s) are printed, with whether every
report.json equals ``--jobs 2``'s, timings aside.

Run: python benchmarks/bench_cluster.py  (in make bench)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import REPO, table

import psutil

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.io.ct import read_ct, write_image

SAMPLE = REPO / "LungTumorRecon" / "Resources" / "SampleData"
METHODS = ["--lungs", "threshold", "--tumor", "gk", "--recon", "none"]
CASES = 6
LIMIT_S = 2.0
BIN = Path(sys.executable).parent


def make_cases(folder: Path) -> None:
    """The sample and five crops of it (a few slices or rows off each side; the seed inside all)."""
    ct = read_ct(SAMPLE / "lung1_image.nrrd")
    g = ct.geometry
    for i in range(CASES):
        k0, j0 = i % 3, 8 * (i // 3)
        array = ct.array[k0:ct.array.shape[0] - (i % 2), j0:, :]
        origin = tuple(float(v) for v in g.kji_to_lps([k0, j0, 0]))
        geometry = VolumeGeometry(size=(array.shape[2], array.shape[1], array.shape[0]), spacing=g.spacing,
                                  origin=origin, direction=g.direction)
        write_image(array, geometry, folder / f"case{i}.nrrd")
        shutil.copy(SAMPLE / "lung1_seeds.mrk.json", folder / f"case{i}.mrk.json")


class PeakMemory:
    """The largest total RSS of a process and its descendants (plus ``others``), sampled."""

    def __init__(self, others: list[int] | None = None) -> None:
        self.others, self.peak, self.stop = others or [], 0, threading.Event()

    def watch(self, pid: int) -> None:
        while not self.stop.wait(0.2):
            total = 0
            for root in [pid, *self.others]:
                try:
                    procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            self.peak = max(self.peak, total)


def run_batch(cases: Path, out: Path, how: list[str], others: list[int] | None = None) -> dict:
    cmd = [str(BIN / "lungtumorrecon"), "batch", str(cases), "--out", str(out), "--quiet", *how, *METHODS]
    memory = PeakMemory(others)
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=memory.watch, args=(child.pid,), daemon=True)
    watcher.start()
    _, stderr = child.communicate()
    seconds = time.perf_counter() - t0
    memory.stop.set()
    watcher.join()
    print(f"  {' '.join(how)}: {seconds:.1f} s, exit {child.returncode}", file=sys.stderr, flush=True)
    return {"seconds": seconds, "peak RSS, all processes (GB)": memory.peak / 1024**3, "exit": child.returncode,
            "note": stderr.strip().splitlines()[-1][:80] if child.returncode else ""}


def reports(out: Path) -> dict:
    found = {}
    for path in sorted(out.glob("*/report.json")):
        report = json.loads(path.read_text())
        report.pop("timings_s", None)
        found[path.parent.name] = report
    return found


def start_cluster(log_dir: Path) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` and two bare ``dask worker --nthreads 1``, as a user starts them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    for name, args in [("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]),
                       *[(f"worker{i}", ["worker", address, "--nthreads", "1"]) for i in range(2)]]:
        with open(log_dir / f"{name}.log", "w") as log:
            procs.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    return address, procs


def stop_cluster(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def main() -> None:
    print(f"## batch on a Dask cluster: {CASES} cases of 512 x 512 x ~46, --jobs 2 against two Dask workers\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ltr-bench-cluster-") as tmp:
        tmp = Path(tmp)
        cases = tmp / "cases"
        cases.mkdir()
        make_cases(cases)
        base = run_batch(cases, tmp / "jobs", ["--jobs", "2"])
        expected = reports(tmp / "jobs")
        rows.append({"mode": "--jobs 2", **base})
        rows.append({"mode": "--scheduler local:2 (cluster start counted)",
                     **run_batch(cases, tmp / "local", ["--scheduler", "local:2"])})
        address, procs = start_cluster(tmp)
        try:
            rows.append({"mode": "--scheduler tcp:// (2 running workers, 1 thread each)",
                         **run_batch(cases, tmp / "tcp", ["--scheduler", address], [p.pid for p in procs])})
        finally:
            stop_cluster(procs)
        for row, out in zip(rows, ["jobs", "local", "tcp"]):
            row["per case (s)"] = row["seconds"] / CASES
            row["overhead per case (s)"] = (row["seconds"] - base["seconds"]) / CASES
            row[f"within {LIMIT_S:.0f} s a case"] = "yes" if row["overhead per case (s)"] <= LIMIT_S else "NO"
            row["reports = --jobs 2's"] = "yes" if reports(tmp / out) == expected and len(expected) == CASES else "NO"
    print(table(rows, ["mode", "seconds", "per case (s)", "overhead per case (s)", f"within {LIMIT_S:.0f} s a case",
                       "peak RSS, all processes (GB)", "reports = --jobs 2's", "exit", "note"]))


if __name__ == "__main__":
    main()
