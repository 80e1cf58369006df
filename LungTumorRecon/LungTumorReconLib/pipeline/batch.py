"""``lungtumorrecon batch``: every case of a folder, each in its own process, with a summary.

Each case (an image file or a DICOM folder directly inside the input folder, with its seeds,
if any, beside it as ``CASENAME.mrk.json``) runs as ``lungtumorrecon run CASE --out
DIR/CASENAME``: the same checks, atomic output folder and one-line errors as a single run,
and a crash or an exhausted memory in one case cannot stop the others. A case whose folder
already holds a ``report.json`` is finished and skipped, so a second run resumes.

``--jobs N`` runs N cases at once on this machine; ``--scheduler`` runs them as tasks of a Dask
cluster instead (:mod:`.cluster`), with the same summary, resume and results.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import IMAGE_SUFFIXES, is_image_file
from LungTumorReconLib.io.output_folder import REPORT_FILE
from LungTumorReconLib.pipeline.job import PARENT_PID_VARIABLE, _own_process_group, kill_process_tree
from LungTumorReconLib.pipeline.options import PipelineOptions

SUMMARY_FILE = "summary.csv"
SEEDS_SUFFIX = ".mrk.json"
BASE_COLUMNS = ["case", "status", "error", "seconds"]
TUMOR_FIELDS = ["volume_ml", "longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm", "mean_diameter_mm",
                "nodule_type", "solid_mean_diameter_mm", "lung_rads_suggestion"]


@dataclass
class Case:
    name: str
    input: Path
    seeds: Path | None = None


@dataclass
class CaseResult:
    case: Case
    status: str  # "ok", "failed" or "skipped" (finished by an earlier run)
    error: str = ""
    seconds: float = 0.0
    values: dict = field(default_factory=dict)
    worker: str = ""  # the Dask worker that ran it (--scheduler); shown by the progress bar only


def case_name(path: Path) -> str:
    if path.is_dir():
        return path.name
    lower = path.name.lower()
    suffix = next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if lower.endswith(s)), "")
    return path.name[: len(path.name) - len(suffix)] if suffix else path.stem


def find_cases(input_dir: str | Path) -> list[Case]:
    """The cases directly inside ``input_dir``: image files and folders (DICOM), sorted by name;
    ``CASENAME.mrk.json`` beside a case is its seeds. Hidden entries and other files are ignored."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError("not a folder of cases", input_dir)
    try:
        entries = sorted(p for p in input_dir.iterdir() if not p.name.startswith("."))
    except PermissionError:
        raise InputError("cannot list this folder (permission denied)", input_dir) from None
    seeds = {p.name[: -len(SEEDS_SUFFIX)]: p for p in entries if p.name.lower().endswith(SEEDS_SUFFIX)}
    cases, names = [], set()
    for p in entries:
        if p.name.lower().endswith(SEEDS_SUFFIX) or not (p.is_dir() or is_image_file(p)):
            continue
        name = case_name(p)
        if name in names:
            raise InputError(f"two cases are named {name!r}; rename one", input_dir)
        names.add(name)
        cases.append(Case(name=name, input=p, seeds=seeds.get(name)))
    if not cases:
        raise InputError("no cases found (expected image files or DICOM folders inside it)", input_dir)
    return cases


def summary_values(report: dict) -> dict:
    """The summary's measurement columns from a case's report.json."""
    values = {}
    for name, segment in report.get("segments", {}).items():
        values[f"{name} volume_ml"] = segment.get("volume_ml")
    for i, tumor in enumerate(report.get("tumors", []), start=1):
        for key in TUMOR_FIELDS:
            values[f"tumor {i} {key}"] = tumor.get(key)
        # a suggestion, not for clinical use: the category alone (its rule is in report.json)
        values[f"tumor {i} lung_rads_suggestion"] = (tumor.get("lung_rads") or {}).get("category")
    return values


def finished_result(case: Case, out_dir: Path) -> CaseResult | None:
    """The result of a case an earlier run finished (its folder holds a report.json), else None."""
    report_path = out_dir / case.name / REPORT_FILE
    if not report_path.is_file():
        return None
    return CaseResult(case, "skipped", values=summary_values(json.loads(report_path.read_text(encoding="utf-8"))))


def _run_case(case: Case, out_dir: Path, run_args: list[str], threads: int, own_group: bool = False) -> CaseResult:
    """One case as ``lungtumorrecon run``. ``own_group`` (a Dask worker's case): the child leads a
    process group of its own, killed whole if this call is interrupted; with ``LTR_PARENT_PID``
    it also exits when its parent is killed, so it never outlives its worker."""
    done = finished_result(case, out_dir)
    if done is not None:
        return done
    target = out_dir / case.name
    cmd = [sys.executable, "-m", "LungTumorReconLib.cli", "run", str(case.input), "--out", str(target), "--quiet",
           "--overwrite", *run_args]  # --overwrite: a folder left without report.json is an unfinished run
    if case.seeds is not None:
        cmd += ["--seeds", str(case.seeds)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          **(_own_process_group() if own_group else {})) as child:
        try:
            _, stderr = child.communicate()
        except BaseException:
            if own_group:
                kill_process_tree(child)
            raise
    seconds = time.perf_counter() - t0
    if child.returncode != 0:
        errors = [line[len("error: "):] for line in stderr.splitlines() if line.startswith("error: ")]
        error = errors[-1] if errors else f"exit code {child.returncode} (killed, perhaps out of memory)"
        return CaseResult(case, "failed", error=error, seconds=seconds)
    report = json.loads((target / REPORT_FILE).read_text(encoding="utf-8"))
    return CaseResult(case, "ok", seconds=seconds, values=summary_values(report))


def write_summary(out_dir: Path, results: list[CaseResult]) -> Path:
    """summary.csv, one row per case in case order; replaced atomically."""
    keys: list[str] = []
    for r in results:
        keys += [k for k in r.values if k not in keys]
    lungs_first = [f"{n} volume_ml" for n in ("right lung", "left lung", "tumor")]
    segments = [k for k in lungs_first if k in keys] + [k for k in keys if k.endswith(" volume_ml")
                                                        and not k.startswith("tumor ") and k not in lungs_first]
    tumors = sorted((k for k in keys if k.startswith("tumor ") and k not in segments),
                    key=lambda k: (int(k.split()[1]), TUMOR_FIELDS.index(k.split()[2])))
    columns = BASE_COLUMNS + segments + tumors
    path = out_dir / SUMMARY_FILE
    partial = out_dir / f".{SUMMARY_FILE}.partial"
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in sorted(results, key=lambda r: r.case.name):
            row = {"case": r.case.name, "status": r.status, "error": r.error,
                   "seconds": f"{r.seconds:.1f}" if r.status != "skipped" else ""}
            row.update({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.values.items()})
            writer.writerow(row)
    partial.replace(path)
    return path


class ProgressBar:
    """One line per finished case on stderr: a bar, counts, and the case's outcome."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()

    def update(self, result: CaseResult) -> None:
        with self.lock:
            self.done += 1
            self.failed += result.status == "failed"
            width = 20
            filled = round(width * self.done / self.total)
            outcome = {"ok": f"done in {result.seconds:.1f} s", "skipped": "already done",
                       "failed": f"failed: {result.error}"}[result.status]
            outcome += f" on {result.worker}" if result.worker and result.status != "skipped" else ""
            self.stream.write(f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                              f"{f' ({self.failed} failed)' if self.failed else ''}  {result.case.name}: {outcome}\n")
            self.stream.flush()


def run_batch(input_dir: str | Path, out_dir: str | Path, run_args: list[str], jobs: int | None = None,
              quiet: bool = False, scheduler: str | None = None,
              options: PipelineOptions | None = None) -> list[CaseResult]:
    """Every case of ``input_dir`` into ``out_dir``; returns the results in case order.

    Parameters
    ----------
    input_dir, out_dir
        The folder of cases, and the folder of their results folders and ``summary.csv``.
    run_args
        The ``lungtumorrecon run`` flags every case gets.
    jobs
        Cases run at once on this machine (default 1); not with ``scheduler``.
    quiet
        No progress bar.
    scheduler
        A Dask scheduler's address, or ``local:N`` for a cluster of N workers on this machine:
        the cases then run as tasks on it (:mod:`.cluster`).
    options
        The run's options, for the memory estimate that sizes the workers of ``local:N``.
    """
    if scheduler is not None and jobs is not None:
        raise InputError("give --jobs (this machine) or --scheduler (a Dask cluster), not both", option="jobs")
    jobs = 1 if jobs is None else jobs
    if jobs < 1:
        raise InputError(f"{jobs}: give 1 or more", option="jobs")
    if scheduler is not None:
        from LungTumorReconLib.pipeline.cluster import parse_scheduler

        parse_scheduler(scheduler)  # a malformed address is refused before any case
    cases = find_cases(input_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(len(cases), stream=open(os.devnull, "w") if quiet else None)
    results: list[CaseResult] = []

    def finished(result: CaseResult) -> None:
        results.append(result)
        bar.update(result)
        write_summary(out_dir, results)  # a summary after every case: an interrupted batch keeps one

    if scheduler is not None:
        from LungTumorReconLib.pipeline.cluster import run_on_cluster

        run_on_cluster(cases, out_dir, run_args, scheduler, options or PipelineOptions(), finished, quiet)
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # each case is a process; threads only wait on it
            futures = [pool.submit(_run_case, case, out_dir, run_args, threads) for case in cases]
            for future in as_completed(futures):
                finished(future.result())
    return sorted(results, key=lambda r: r.case.name)
