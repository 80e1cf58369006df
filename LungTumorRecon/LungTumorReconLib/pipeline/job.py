"""The pipeline in a child process, with progress and Cancel, for the interactive front ends.

The Slicer module and the web app must stay responsive while the lungs, a network or the
GAN run for seconds to minutes, and Cancel must stop the work at once. As MONAIAuto3DSeg
and TotalSegmentator do, the work runs in a separate Python process:

* :class:`PipelineJob` writes the CT (as the scene holds it), the seeds, the options and
  any lungs / tumour / lung correction the user already has into a job folder, and starts
  ``python -m LungTumorReconLib.pipeline.job FOLDER``;
* the child runs :func:`pipeline.run.run_on_volume` and writes the result beside its inputs
  (masks as ``.npy``, the model as a legacy ``.vtk`` in LPS, the rest as JSON), printing
  ``PROGRESS <fraction> <step> <message>`` lines, and its error, if any, as ``error.json``;
* the parent polls (a Qt timer, an asyncio loop), shows the progress, and reads the result
  back as a :class:`PipelineResult` on its own CT. :meth:`PipelineJob.cancel` kills the child
  and everything it started.

Inside desktop Slicer the interpreter is ``PythonSlicer``, the CTK app launcher, which runs the
real Python as *its* child. Killing the launcher alone would leave that Python computing, so
the job starts in a process group of its own (a new session on POSIX, ``CREATE_NEW_PROCESS_GROUP``
on Windows) and Cancel ends the whole group (``killpg``; ``taskkill /T /F`` on Windows). The
child also watches the front end's process and stops when it is gone (POSIX), so a crashed
Slicer leaves no work running. On Windows no console window is shown.

No pickles cross the boundary: every file is numpy (``allow_pickle=False``), JSON or VTK.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.errors import LungTumorReconError
from LungTumorReconLib.io.ct import CTVolume
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR, Seed
from LungTumorReconLib.lungs.correction import LungCorrection
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.pipeline.run import PipelineResult
from LungTumorReconLib.pipeline.stages import JobInputs, fraction_at_start, step_weights
from LungTumorReconLib.tumor.measurements import TumorMeasurement

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"  # the child's LungTumorReconError, as data
SURFACE_FILE = "surface.vtk"
_PREFIX = "PROGRESS "
PARENT_PID_VARIABLE = "LTR_PARENT_PID"  # the front end's process: the child stops when it is gone
_WATCH_PARENT_S = 1.0
_LUNGS = (RIGHT_LUNG, LEFT_LUNG)


@dataclass
class JobStatus:
    """What the parent knows of a running job: the latest progress event, and every message."""

    fraction: float = 0.0
    message: str = "starting"
    step: Step | None = None
    log: list[str] = field(default_factory=list)

    @property
    def event(self) -> ProgressEvent:
        return ProgressEvent(self.step or Step.READ, self.message, self.fraction)


# -- the parent's side -----------------------------------------------------------------------


class ChildJob:
    """Work in a child process ``python -m MODULE FOLDER``, in a process group of its own: its
    ``PROGRESS`` lines, Cancel, and its error as data. A subclass names the child's ``module``
    and writes its inputs into the job folder (:meth:`_write_inputs`).

    ``python`` is the interpreter to run it with: this one by default; inside desktop Slicer
    the module passes ``PythonSlicer``. The job folder is removed by :meth:`cleanup`.
    """

    module = ""  # the child's entry point, run as ``python -m module FOLDER``
    process_name = "the child process"  # as an error names it

    def __init__(self, python: str | None = None, work_dir: str | Path | None = None) -> None:
        self.python = python or sys.executable
        self.folder = Path(tempfile.mkdtemp(prefix="ltr-job-", dir=work_dir))
        self.status = JobStatus()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._process: subprocess.Popen | None = None
        self._stderr: list[str] = []
        self.cancelled = False

    # lifecycle
    def _write_inputs(self) -> None:
        raise NotImplementedError

    def start(self) -> "ChildJob":
        self._write_inputs()
        env = dict(os.environ)
        lib_parent = str(Path(__file__).resolve().parents[2])  # so a bare PythonSlicer finds the package
        env["PYTHONPATH"] = lib_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_PID_VARIABLE] = str(os.getpid())
        self._process = subprocess.Popen(
            [self.python, "-m", self.module, str(self.folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            **_own_process_group(),
        )
        threading.Thread(target=self._read, args=(self._process.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self._process.stderr, False), daemon=True).start()
        return self

    def _read(self, stream, is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self._lines.put(line.rstrip("\n"))
            else:
                self._stderr.append(line.rstrip("\n"))
        stream.close()

    def poll(self) -> JobStatus:
        """Take the progress lines that arrived; never blocks."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line and line.startswith(_PREFIX):
                fraction, step, message = line[len(_PREFIX):].split(" ", 2)
                self.status.fraction = max(self.status.fraction, float(fraction))
                self.status.step = Step(step)
                self.status.message = message
                self.status.log.append(message)
        return self.status

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        assert self._process is not None, "start() first"
        return self._process.wait(timeout)

    def cancel(self) -> None:
        """Stop the child and every process it started, now; their partial files are discarded
        with the job folder."""
        if self.running:
            self.cancelled = True
            kill_process_tree(self._process)

    @property
    def failure(self) -> LungTumorReconError | None:
        """Why the child failed, as data (None while running, after success, or when cancelled):
        its own error with the file and option it names, or what its stderr's last
        ``error:`` line says."""
        if self._process is None or self.running or self.cancelled or self._process.returncode == 0:
            return None
        self._process.wait()
        if (self.folder / ERROR_FILE).is_file():
            return LungTumorReconError.from_dict(json.loads((self.folder / ERROR_FILE).read_text(encoding="utf-8")))
        lines = [line for line in self._stderr if line.startswith("error: ")]
        if lines:
            return LungTumorReconError(lines[-1][len("error: "):])
        return LungTumorReconError(f"{self.process_name} stopped unexpectedly (exit code {self._process.returncode})")

    @property
    def error(self) -> str | None:
        """The child's one-line error, the option named in words (None: no failure)."""
        failure = self.failure
        return None if failure is None else failure.describe()

    def cleanup(self) -> None:
        self.cancel()
        shutil.rmtree(self.folder, ignore_errors=True)


class PipelineJob(ChildJob):
    """One pipeline run in a child process (see :class:`ChildJob`)."""

    module = "LungTumorReconLib.pipeline.job"
    process_name = "the pipeline process"

    def __init__(self, inputs: JobInputs, python: str | None = None, work_dir: str | Path | None = None) -> None:
        self.inputs = inputs
        super().__init__(python, work_dir)

    def _write_inputs(self) -> None:
        write_job(self.folder, self.inputs)

    def result(self) -> PipelineResult:
        """The finished run's result, on the caller's own CT."""
        if self.running:
            raise RuntimeError("the job is still running")
        if self.cancelled:
            raise LungTumorReconError("cancelled")
        failure = self.failure  # read once: it waits for the child and reads its error file
        if failure is not None:
            raise failure
        return read_result(self.folder, self.inputs.ct)


def _own_process_group() -> dict:
    """Popen options that put the child, and whatever it starts, in a group of its own."""
    if os.name == "nt":
        info = subprocess.STARTUPINFO()
        info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        info.wShowWindow = 0  # SW_HIDE: PythonSlicer.exe is a console program
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        return {"startupinfo": info, "creationflags": flags}
    return {"start_new_session": True}  # its pid is then the group's id


def kill_process_tree(process: subprocess.Popen) -> None:
    """Kill a running ``process`` and its descendants (started with :func:`_own_process_group`),
    and reap it. Only while it is unreaped is its id sure to still name its own group."""
    if process.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], capture_output=True,
                       creationflags=subprocess.CREATE_NO_WINDOW)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.kill()
    process.wait()


# -- the job folder --------------------------------------------------------------------------


def write_job(folder: Path, inputs: JobInputs) -> None:
    o = inputs.options
    g = inputs.ct.geometry
    np.save(folder / "ct.npy", inputs.ct.array, allow_pickle=False)
    doc: dict = {
        "geometry": {"size": list(g.size), "spacing": list(g.spacing), "origin": list(g.origin),
                     "direction": list(g.direction)},
        "path": inputs.ct.path,
        "seeds": [{"label": s.label, "lps": list(s.lps)} for s in inputs.seeds],
        "options": {"lungs": o.lungs, "tumor": o.tumor, "recon": o.recon, "device": o.device,
                    "tumor_per_slice": o.tumor_per_slice,
                    "weights": str(o.weights) if o.weights else None,
                    "recon_weights": str(o.recon_weights) if o.recon_weights else None},
        "lungs": [],
        "tumor_mask": inputs.tumor_mask is not None,
        "correction": None,
    }
    for name, mask in (inputs.lungs or {}).items():
        index = _LUNGS.index(name)
        np.save(folder / f"lung{index}.npy", np.asarray(mask, dtype=bool), allow_pickle=False)
        doc["lungs"].append(name)
    if inputs.tumor_mask is not None:
        np.save(folder / "tumor_mask.npy", np.asarray(inputs.tumor_mask, dtype=bool), allow_pickle=False)
    if inputs.correction is not None:
        c = inputs.correction
        np.save(folder / "correction.npy", np.asarray(c.mask, dtype=bool), allow_pickle=False)
        doc["correction"] = {"lung": c.lung, "k": int(c.k)}
    (folder / JOB_FILE).write_text(json.dumps(doc), encoding="utf-8")


def _load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / name, allow_pickle=False)


def read_job(folder: Path) -> JobInputs:
    doc = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    gd = doc["geometry"]
    geometry = VolumeGeometry(size=tuple(gd["size"]), spacing=tuple(gd["spacing"]), origin=tuple(gd["origin"]),
                              direction=tuple(gd["direction"]))
    ct = CTVolume(array=_load(folder, "ct.npy"), geometry=geometry, path=doc["path"])
    od = doc["options"]
    options = PipelineOptions(lungs=od["lungs"], tumor=od["tumor"], recon=od["recon"], device=od["device"],
                              tumor_per_slice=od["tumor_per_slice"],
                              weights=Path(od["weights"]) if od["weights"] else None,
                              recon_weights=Path(od["recon_weights"]) if od["recon_weights"] else None)
    lungs = {name: _load(folder, f"lung{_LUNGS.index(name)}.npy") for name in doc["lungs"]} or None
    correction = None
    if doc["correction"]:
        correction = LungCorrection(lung=doc["correction"]["lung"], k=doc["correction"]["k"],
                                    mask=_load(folder, "correction.npy"))
    return JobInputs(
        ct=ct,
        seeds=[Seed(label=s["label"], lps=tuple(s["lps"])) for s in doc["seeds"]],
        options=options,
        lungs=lungs,
        tumor_mask=_load(folder, "tumor_mask.npy") if doc["tumor_mask"] else None,
        correction=correction,
    )


def write_result(folder: Path, result: PipelineResult) -> None:
    names = list(result.segments)
    for index, name in enumerate(names):
        np.save(folder / f"segment{index}.npy", result.segments[name], allow_pickle=False)
    if result.heterogeneity is not None:
        np.save(folder / "heterogeneity.npy", result.heterogeneity, allow_pickle=False)
    if result.surface_lps is not None:
        from vtkmodules.vtkIOLegacy import vtkPolyDataWriter

        writer = vtkPolyDataWriter()
        writer.SetInputData(result.surface_lps)
        writer.SetFileName(str(folder / SURFACE_FILE))
        writer.SetFileTypeToBinary()
        writer.Write()
    doc = {
        "segments": names,
        "tumors": [t.as_dict() for t in result.tumors],
        "methods": result.methods,
        "device": result.device,
        "timings_s": result.timings_s,
        "candidates": result.candidates,
        "warnings": result.ct.warnings,
        "seeds": [{"label": s.label, "lps": list(s.lps)} for s in result.seeds],
        "heterogeneity": result.heterogeneity is not None,
        "surface": result.surface_lps is not None,
    }
    partial = folder / (RESULT_FILE + ".partial")
    partial.write_text(json.dumps(doc), encoding="utf-8")
    partial.replace(folder / RESULT_FILE)  # the result exists only once it is complete


def read_result(folder: Path, ct: CTVolume) -> PipelineResult:
    doc = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    segments = {name: _load(folder, f"segment{i}.npy") for i, name in enumerate(doc["segments"])}
    surface = None
    if doc["surface"]:
        from vtkmodules.vtkIOLegacy import vtkPolyDataReader

        reader = vtkPolyDataReader()
        reader.SetFileName(str(folder / SURFACE_FILE))
        reader.Update()
        surface = reader.GetOutput()
    for warning in doc["warnings"]:
        if warning not in ct.warnings:
            ct.warnings.append(warning)
    return PipelineResult(
        ct=ct,
        seeds=[Seed(label=s["label"], lps=tuple(s["lps"])) for s in doc["seeds"]],
        segments=segments,
        tumors=[TumorMeasurement(**t) for t in doc["tumors"]],
        surface_lps=surface,
        methods=doc["methods"],
        device=doc["device"],
        timings_s=doc["timings_s"],
        heterogeneity=_load(folder, "heterogeneity.npy") if doc["heterogeneity"] else None,
        candidates=doc["candidates"],
    )


# -- the child's side ------------------------------------------------------------------------


def run_job(folder: Path) -> PipelineResult:
    """Run the job in ``folder`` and write its result there (the child process's work)."""
    from LungTumorReconLib.pipeline.run import check_options, run_on_volume

    inputs = read_job(folder)
    options = inputs.options
    device = check_options(options)
    weights = step_weights(options, inputs.lungs is not None, inputs.tumor_mask is not None,
                           inputs.correction is not None)

    def progress(event: ProgressEvent) -> None:
        fraction = fraction_at_start(event.step, weights)
        if fraction is not None:
            print_progress(fraction, event.step, event.message)

    lungs_from = None
    if inputs.lungs is not None:
        lungs_from = dict(inputs.lungs)
        if inputs.tumor_mask is not None:
            lungs_from[TUMOR] = inputs.tumor_mask
    result = run_on_volume(
        inputs.ct, inputs.seeds, options, device,
        tumor_mask=inputs.tumor_mask if lungs_from is None else None,
        lungs_from=lungs_from, correction=inputs.correction, progress=progress,
    )
    if inputs.lungs is not None:  # the scene's lungs, not a file
        result.methods["lungs"]["name"] = "from-scene"
        result.methods["lungs"]["parameters"] = {}
    print_progress(0.99, Step.WRITE, "sending the result")
    write_result(folder, result)
    print_progress(1.0, Step.DONE, "done")
    return result


def _exit_when_parent_is_gone(parent_pid: int) -> None:
    """Stop this process when the front end that started the job is gone (POSIX; ``kill(pid, 0)``
    only asks whether it exists). Windows relies on Cancel and the module's cleanup."""
    import time

    from LungTumorReconLib.io.output_folder import remove_open_partial_folders

    direct = os.getppid() == parent_pid
    while True:
        time.sleep(_WATCH_PARENT_S)
        try:
            os.kill(parent_pid, 0)
            gone = direct and os.getppid() != parent_pid  # re-parented: gone, though perhaps not yet reaped
        except ProcessLookupError:
            gone = True
        except PermissionError:
            gone = False  # exists, owned by someone else
        if gone:
            remove_open_partial_folders()
            os._exit(3)


def stop_with_parent() -> None:
    """Exit this process when the one named by ``LTR_PARENT_PID`` is gone (POSIX): a job's front
    end, or the batch or Dask worker that started a case (a child in a process group of its own
    outlives a killed parent otherwise). Nothing happens when the variable is unset."""
    parent = os.environ.get(PARENT_PID_VARIABLE, "")
    if os.name != "nt" and parent.isdigit():
        threading.Thread(target=_exit_when_parent_is_gone, args=(int(parent),), daemon=True).start()


def print_progress(fraction: float, step: Step, message: str) -> None:
    """One progress line for the parent (:meth:`ChildJob.poll` reads it)."""
    print(f"{_PREFIX}{fraction:.3f} {step.value} {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    return run_child(sys.argv[1:] if argv is None else argv, "LungTumorReconLib.pipeline.job", JOB_FILE, run_job)


def run_child(argv: list[str], module: str, job_file: str, work) -> int:
    """A child's ``main``: watch the parent, run ``work(folder)``, and report a failure as
    ``error.json`` (exit code 2) or one ``error:`` line (1, an internal error)."""
    stop_with_parent()
    if len(argv) != 1 or not (Path(argv[0]) / job_file).is_file():
        sys.stderr.write(f"error: usage: python -m {module} JOB_FOLDER\n")
        return 2
    try:
        work(Path(argv[0]))
    except LungTumorReconError as exc:
        (Path(argv[0]) / ERROR_FILE).write_text(json.dumps(exc.as_dict()), encoding="utf-8")
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the front end; the traceback after it
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
