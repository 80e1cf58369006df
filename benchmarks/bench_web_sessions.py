"""Four browser sessions on one web-app server at once (issue 25), in headless Chromium.

Each session opens its own case, two by uploading it, two from the server's ``--data`` folder
(the bundled sample and a synthetic chest, each twice), picks the fast methods (threshold
lungs, GK, marching cubes) and presses Run all; all four run together. Each session's
volumes table must equal, voxel for voxel, what ``lungtumorrecon run`` writes for its case
with the same methods: its own results, not another's. Meanwhile each page's round trip is
timed (a button whose answer comes from the server: click, until the page shows it), and the
resident memory of the server, its session processes and their jobs is summed every half
second (RSS, so shared pages count once per process: an upper bound), against the 8 GB check.

Run: python benchmarks/bench_web_sessions.py  (in make bench)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import REPO, table

sys.path.insert(0, str(REPO / "Testing"))  # the web tests' page driver

SAMPLE = REPO / "LungTumorRecon" / "Resources" / "SampleData" / "lung1_image.nrrd"
SESSIONS = [("upload", "sample"), ("upload", "synthetic"), ("data", "sample"), ("data", "synthetic")]
FAST = ["--lungs", "threshold", "--tumor", "gk", "--recon", "mc"]
LABELS = {"ltr-lungs-method": "Threshold and connected regions", "ltr-recon-method": "Marching cubes"}
LIMIT_GB = 8.0
RUN_TIMEOUT_S = 900
# Click Save (the PACS destination), until the server's answer shows in the page.
ROUND_TRIP_JS = """
const done = arguments[arguments.length - 1];
const message = document.getElementById('ltr-dicom-message');
const t0 = performance.now();
const seen = new MutationObserver(() => {
  if (message.textContent.trim()) { seen.disconnect(); done(performance.now() - t0); }
});
seen.observe(message, {childList: true, characterData: true, subtree: true});
document.getElementById('ltr-save-pacs').click();
"""


def make_cases(folder: Path) -> dict[str, Path]:
    from LungTumorReconDev.synthetic_thorax import make_thorax
    from LungTumorReconLib.io.ct import write_image

    folder.mkdir(parents=True)
    shutil.copy(SAMPLE, folder / "sample.nrrd")
    thorax = make_thorax(size=(192, 192, 60), spacing=(1.5, 1.5, 2.5), tumors=("solid",), seed=25)
    write_image(thorax.ct, thorax.geometry, folder / "synthetic.nrrd")
    return {"sample": folder / "sample.nrrd", "synthetic": folder / "synthetic.nrrd"}


def cli_voxels(ct: Path, out: Path) -> dict[str, int]:
    """What the command line finds on the case with the same methods."""
    run = subprocess.run([sys.executable, "-m", "LungTumorReconLib.cli", "run", str(ct), "--out", str(out), *FAST,
                          "--quiet"], capture_output=True, text=True, env=_env())
    assert run.returncode == 0, run.stderr
    segments = json.loads((out / "report.json").read_text())["segments"]
    return {name: int(s["voxels"]) for name, s in segments.items()}


def _env() -> dict:
    paths = [str(REPO / "LungTumorRecon"), str(REPO), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)), OMP_NUM_THREADS="1")


class Memory(threading.Thread):
    """The summed RSS of a process and all its descendants, sampled until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_gb, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.stop.is_set():
            total = 0
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_gb = max(self.peak_gb, total / 1024**3)
            time.sleep(0.5)


def drive(index: int, url: str, cases: dict[str, Path], start: threading.Barrier, row: dict, trips: list) -> None:
    """One user: open the page, open the case, the fast methods, Run all; round trips meanwhile."""
    from test_web_app import STATE_PREFIX, Page, new_driver

    how, case = SESSIONS[index]
    driver = new_driver()
    try:
        t0 = time.perf_counter()
        page = Page(driver, url, Path(tempfile.mkdtemp(prefix="ltr-bench-shots-")))
        row["page (s)"] = time.perf_counter() - t0
        if how == "upload":
            page.el("ltr-upload").send_keys(str(cases[case]))
        else:
            page.choose("ltr-data-case", cases[case].name)
            page.click("ltr-open-case")
        page.wait_for(lambda: page.state("case_name") == cases[case].name and not page.state("case_busy"), 120,
                      "the case")
        for element_id, label in LABELS.items():
            page.choose(element_id, label)
        page.wait_for(lambda: page.state("lungs") == "threshold" and page.state("recon") == "mc", 10, "the methods")
        start.wait(timeout=600)  # all four Run all together
        t0 = time.perf_counter()
        page.click("ltr-run-all")
        page.wait_for(lambda: page.state("busy"), 30, "the run to start")
        driver.set_script_timeout(60)
        n = 0
        while page.state("busy") and time.perf_counter() - t0 < RUN_TIMEOUT_S:
            page.d.execute_script("window.trame.state.set(arguments[0], arguments[1]);"
                                  "window.trame.state.set(arguments[2], '');", STATE_PREFIX + "pacs_destination",
                                  f"BENCH{index}@127.0.0.1:{11000 + n}", STATE_PREFIX + "dicom_message")
            time.sleep(0.3)  # the emptied message reaches the page first
            trips.append(page.d.execute_async_script(ROUND_TRIP_JS))
            n += 1
            time.sleep(0.7)
        page.wait_idle(60)
        row["Run all (s)"] = time.perf_counter() - t0
        row["error"] = page.state("error") or ""
        row["case shown"] = page.state("case_name")
        row["voxels"] = {r["segment"]: int(r["voxels"]) for r in page.state("volume_rows")}
    except Exception as exc:  # noqa: BLE001 - reported in the table
        start.abort()  # the others do not wait for this one
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        driver.quit()


def main() -> None:
    from test_web_app import _free_port

    work = Path(tempfile.mkdtemp(prefix="ltr-bench-web-"))
    try:
        cases = make_cases(work / "data")
        expected = {name: cli_voxels(path, work / f"cli-{name}") for name, path in cases.items()}
        port = _free_port()
        env = dict(_env(), XDG_CONFIG_HOME=str(work / "config"))  # the Save button writes settings here
        log = open(work / "front.log", "w")
        front = subprocess.Popen([sys.executable, "-m", "LungTumorReconLib.cli", "app", "--port", str(port), "--data",
                                  str(work / "data"), "--out", str(work / "out"), "--max-sessions", "4"],
                                 stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        time.sleep(3)
        memory = Memory(front.pid)
        memory.start()
        rows = [{"session": i + 1, "opened by": how, "case": case} for i, (how, case) in enumerate(SESSIONS)]
        trips: list[float] = []
        start = threading.Barrier(len(SESSIONS))
        t0 = time.perf_counter()
        users = [threading.Thread(target=drive, args=(i, f"http://127.0.0.1:{port}/", cases, start, rows[i], trips))
                 for i in range(len(SESSIONS))]
        for user in users:
            user.start()
        for user in users:
            user.join()
        wall = time.perf_counter() - t0
        memory.stop.set()
        front.terminate()
        front.wait(60)
        log.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(rows, expected, trips, memory.peak_gb, wall)


def _report(rows: list[dict], expected: dict, trips: list[float], peak_gb: float, wall: float) -> None:
    for row in rows:
        got, want = row.pop("voxels", {}), expected[row["case"]]
        for name, label in (("right lung", "right lung (voxels)"), ("left lung", "left lung (voxels)"),
                            ("tumor", "tumour (voxels)")):
            row[label] = got.get(name)
        row["= CLI's"] = "yes" if got == want and not row.get("error") else "NO"
    print("## Four browser sessions at once on one server (Run all: threshold lungs, GK, marching cubes)\n")
    print(table(rows, ["session", "opened by", "case", "case shown", "page (s)", "Run all (s)", "right lung (voxels)",
                       "left lung (voxels)", "tumour (voxels)", "= CLI's", "error"]))
    trips_ms = sorted(trips)
    p95 = trips_ms[min(len(trips_ms) - 1, int(round(0.95 * (len(trips_ms) - 1))))] if trips_ms else None
    print("\n## Load: memory and the page's answers while the four jobs run\n")
    print(table([{"sessions": len(rows), "wall (s)": wall, "peak RSS, server + sessions + jobs (GB)": peak_gb,
                  f"within {LIMIT_GB:.0f} GB": "yes" if peak_gb <= LIMIT_GB else "NO", "round trips": len(trips_ms),
                  "median (ms)": statistics.median(trips_ms) if trips_ms else None, "95th percentile (ms)": p95,
                  "max (ms)": trips_ms[-1] if trips_ms else None}],
                ["sessions", "wall (s)", "peak RSS, server + sessions + jobs (GB)", f"within {LIMIT_GB:.0f} GB",
                 "round trips", "median (ms)", "95th percentile (ms)", "max (ms)"]))
    print("\nA round trip: a click on Save (PACS destination) until the server's answer shows in the page, "
          "in each of the four pages, about once a second while all four Run all jobs run.")


if __name__ == "__main__":
    main()
