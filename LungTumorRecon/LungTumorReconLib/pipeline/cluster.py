"""``lungtumorrecon batch --scheduler``: a batch's cases as tasks on a Dask distributed cluster.

A cohort of a thousand CTs outgrows one machine; Dask already schedules tasks over many, so
this module only maps cases to its tasks (``Client.submit``, ``as_completed``) and keeps
:mod:`.batch`'s contract: the same ``summary.csv`` after every case, failures isolated, resume,
the same progress bar, and results bit for bit those of ``run``, since each task runs the very
``lungtumorrecon run`` process that ``--jobs`` runs (:func:`batch._run_case`).

* Each case is a child process of the worker, in a process group of its own, and it watches
  the worker (``LTR_PARENT_PID``): a killed worker leaves no case computing.
* A case's output is moved into place only when it succeeds, so a case whose worker died is
  never taken as done. The scheduler then runs it again on another worker (Dask's own
  rescheduling); a case that kills every worker it runs on ends as failed (``KilledWorker``,
  after ``distributed.scheduler.allowed-failures`` tries; ``local:N`` sets 1: a case runs twice
  at most).
* A lost scheduler stops the batch with one error; what finished is on disk, so a rerun resumes.
* ``local:N`` starts a ``LocalCluster`` whose workers each take as many cases at once as fit in
  their memory by the run's estimate (:mod:`.memory`); on a real cluster ``dask worker
  --nthreads K --memory-limit M`` does the same, and a worker that is too small is warned of.

Paths are sent as they are: the input and output folders must be on a filesystem that every
worker mounts at the same path.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.pipeline.batch import Case, CaseResult, _run_case, finished_result
from LungTumorReconLib.pipeline.memory import GB, available_bytes, estimate_peak_bytes
from LungTumorReconLib.pipeline.options import PipelineOptions

LOCAL_PREFIX = "local:"
CONNECT_TIMEOUT_S = 10.0  # to reach the scheduler at the start, and to get it back once lost
# HOST is a name, an IPv4 address or a bracketed IPv6 one: tcp://[::1]:8786
_ADDRESS = re.compile(r"^(?:(tcp|tls|inproc|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(?::\d+)?$")


@dataclass(frozen=True)
class LocalShape:
    """How ``local:N`` sizes its workers from the run's memory estimate."""

    workers: int
    threads: int  # cases one worker runs at once: as many as fit in its memory_limit
    memory_limit: int  # bytes: threads x the case's estimated peak
    case_threads: int  # OMP threads of each case: the machine's cores over the cases at once
    peak_bytes: float  # the estimated peak of the costliest case


def parse_scheduler(text: str) -> int | str:
    """``local:N`` as the worker count N, else the scheduler's address (``tcp://HOST:PORT``).

    Raises
    ------
    InputError
        For a malformed value (before any case runs).
    """
    if text.startswith(LOCAL_PREFIX):
        count = text[len(LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise InputError(f"{text}: give local:N with N workers, 1 or more", option="scheduler")
        return int(count)
    if not _ADDRESS.match(text):
        raise InputError(f"{text}: give the Dask scheduler's address (tcp://HOST:8786) or local:N",
                         option="scheduler")
    return text


def case_voxels(case: Case) -> int | None:
    """The case's voxel count from headers alone: the image file's, or one DICOM slice's times
    the folder's files. None when unreadable: the case's own run then says why."""
    try:
        if case.input.is_dir():
            import pydicom

            files = [p for p in case.input.rglob("*") if p.is_file()]
            for path in files:
                try:
                    header = pydicom.dcmread(path, stop_before_pixels=True)
                except Exception:  # noqa: BLE001 - not a DICOM file: try the next one
                    continue
                if "Rows" in header and "Columns" in header:
                    return int(header.Rows) * int(header.Columns) * len(files)
            return None
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(case.input))
        reader.ReadImageInformation()
        voxels = 1
        for n in reader.GetSize():
            voxels *= int(n)
        return voxels
    except Exception:  # noqa: BLE001 - unreadable: not counted here, refused by its run
        return None


def case_peak_bytes(cases: list[Case], options: PipelineOptions) -> float:
    """The largest estimated peak memory of the cases' runs with these methods (:mod:`.memory`)."""
    from LungTumorReconLib.pipeline.run import resolved_tumor

    tumor = resolved_tumor(options)
    peaks = [estimate_peak_bytes(v, options.lungs, tumor, options.recon, seeded=c.seeds is not None)
             for c in cases for v in [case_voxels(c)] if v is not None]
    return max(peaks, default=estimate_peak_bytes(0, options.lungs, tumor, options.recon))


def local_shape(workers: int, peak_bytes: float, cpus: int | None = None,
                available: float | None = None) -> LocalShape:
    """Size ``local:N``'s workers: each takes at most its share of the cores, and no more cases
    than its share of the free memory holds at ``peak_bytes`` each (one at least: a case that
    cannot fit refuses itself by its own memory check).

    Parameters
    ----------
    workers
        N, the worker processes.
    peak_bytes
        One case's estimated peak (:func:`case_peak_bytes`).
    cpus, available
        The machine's cores and free bytes; default: this machine's now.
    """
    cpus = cpus or os.cpu_count() or 1
    if available is None:
        available = available_bytes()
    if available is None:  # not Linux: psutil (a dependency of distributed) knows
        import psutil

        available = float(psutil.virtual_memory().available)
    share = available / workers
    threads = max(1, min(cpus // workers, int(share // peak_bytes)))
    return LocalShape(workers, threads, int(threads * peak_bytes), max(1, cpus // (workers * threads)), peak_bytes)


def _case_task(case: Case, out_dir: str, run_args: list[str], threads: int | None) -> CaseResult:
    """What a worker runs: one case. ``threads`` None: the worker's share of its machine's cores."""
    from distributed import get_worker

    worker = get_worker()
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
    result = _run_case(case, Path(out_dir), run_args, threads, own_group=True)
    result.worker = worker.address
    return result


@contextmanager
def _client(scheduler: int | str, shape: LocalShape | None) -> Iterator:
    """A Client of a new LocalCluster (``shape``), or of the scheduler at an address."""
    import dask
    from distributed import Client, LocalCluster

    if shape is not None:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            cluster = LocalCluster(n_workers=shape.workers, threads_per_worker=shape.threads, processes=True,
                                   memory_limit=shape.memory_limit, dashboard_address=None,
                                   silence_logs=logging.ERROR)
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        host, colon, port = str(scheduler).partition("://")[2].rpartition(":")
        if str(scheduler).startswith("tcp://") and colon and port.isdigit():  # refused now, not after retries
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise UnavailableError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); start it with "
                               "`dask scheduler` and workers with `dask worker ADDRESS`", option="scheduler") from None
    try:
        yield client
    finally:
        client.close(timeout=CONNECT_TIMEOUT_S)


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Dask's own log lines (a lost connection, its retries) off in this process while the batch
    runs: the batch says what happened in one line. Its config gives some loggers their own level."""
    import distributed  # noqa: F401 - its loggers exist once it is imported

    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _warn_small_workers(client, peak_bytes: float, stream) -> None:
    """A warning for each worker that may take more cases at once than its memory holds."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    for address, info in sorted(workers.items()):
        threads, limit = int(info.get("nthreads") or 1), float(info.get("memory_limit") or 0)
        if limit and threads * peak_bytes > limit:
            fit = max(1, int(limit // peak_bytes))
            stream.write(f"warning: Dask worker {address} runs {threads} cases at once in {limit / GB:.1f} GB, but "
                         f"a case needs up to {peak_bytes / GB:.1f} GB: start it with --nthreads {fit}\n")


def _outcome(future, case: Case, scheduler: int | str) -> CaseResult:
    """The finished task's CaseResult; a lost scheduler ends the batch."""
    from distributed import KilledWorker

    if future.status == "cancelled":  # nothing here cancels: the client lost its scheduler
        raise UnavailableError(f"lost the Dask scheduler at {scheduler}; the finished cases are kept: run the "
                               "same batch again to resume", option="scheduler")
    if future.status == "error":
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return CaseResult(case, "failed", error="its Dask worker died each time it ran it (killed, perhaps "
                              "out of memory)")
        return CaseResult(case, "failed", error=f"on its Dask worker: {type(exc).__name__}: {exc}")
    return future.result()


def run_on_cluster(cases: list[Case], out_dir: Path, run_args: list[str], scheduler: str, options: PipelineOptions,
                   finished: Callable[[CaseResult], None], quiet: bool = False) -> None:
    """Run the cases not yet finished in ``out_dir`` as tasks of a Dask cluster, calling
    ``finished`` with each case's result as it comes (the skipped ones first).

    Parameters
    ----------
    cases, out_dir, run_args
        As :func:`.batch.run_batch` has them.
    scheduler
        The scheduler's address, or ``local:N``.
    options
        The run's methods, for the memory estimate.
    finished
        Called in this thread with each CaseResult.
    quiet
        No line about the cluster on stderr.

    Raises
    ------
    UnavailableError
        The scheduler cannot be reached, or was lost (the finished cases are kept).
    """
    from distributed import as_completed

    target = parse_scheduler(scheduler)
    todo = []
    for case in cases:
        done = finished_result(case, out_dir)
        if done is not None:
            finished(done)
        else:
            todo.append(case)
    if not todo:
        return
    peak = case_peak_bytes(todo, options)
    shape = local_shape(target, peak) if isinstance(target, int) else None
    stream = open(os.devnull, "w") if quiet else sys.stderr
    if shape is not None:
        stream.write(f"Dask LocalCluster: {shape.workers} workers, each running up to {shape.threads} cases at once "
                     f"in {shape.memory_limit / GB:.1f} GB (a case needs up to {peak / GB:.1f} GB)\n")
    with _quiet_dask_logs(), _client(target, shape) as client:
        if shape is None:
            _warn_small_workers(client, peak, sys.stderr)
        threads = shape.case_threads if shape is not None else None
        by_key = {}
        for case in todo:
            key = f"lungtumorrecon-{case.name}-{uuid.uuid4().hex[:8]}"
            by_key[key] = client.submit(_case_task, case, str(out_dir), run_args, threads, key=key, pure=False)
        cases_by_key = {key: case for key, case in zip(by_key, todo)}
        for future in as_completed(list(by_key.values())):
            finished(_outcome(future, cases_by_key[future.key], scheduler))
