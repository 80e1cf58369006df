"""``lungtumorrecon``: the command-line front end (batch use). It parses, calls the library, reports.

Exit codes: 0 success; 2 bad input, an unavailable method or device, or a refused option;
1 an unexpected internal error (its traceback goes to a log file named on stderr).
Not for clinical use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from LungTumorReconLib import __version__
from LungTumorReconLib.errors import LungTumorReconError, UnavailableError
from LungTumorReconLib.followup import cli as followup_cli
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconLib.resources import resource_path
from LungTumorReconWeb import launch as app_launch

SAMPLE_DIR = resource_path("SampleData")
SAMPLE_CT = SAMPLE_DIR / "lung1_image.nrrd"
SAMPLE_LABEL = SAMPLE_DIR / "lung1_label.nrrd"
SAMPLE_SEEDS = SAMPLE_DIR / "lung1_seeds.mrk.json"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ``error: ...`` line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message} (see --help)\n")
        raise SystemExit(2)


class _Progress:
    """Progress lines on stderr, with elapsed seconds; never prefixed like errors or warnings."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.quiet:
            sys.stderr.write(f"[{time.perf_counter() - self.t0:6.1f} s] {event.message}\n")
            sys.stderr.flush()


# Each PipelineOptions field (and batch's jobs) by its flag, for errors that name an option.
FLAGS = {"lungs": "--lungs", "tumor": "--tumor", "recon": "--recon", "device": "--device", "weights": "--weights",
         "recon_weights": "--recon-weights", "seeds_path": "--seeds", "tumor_mask_path": "--tumor-mask",
         "lungs_from": "--lungs-from", "lung_correction": "--lung-correction", "roi": "--roi",
         "tumor_per_slice": "--tumor-per-slice", "memory_check": "--skip-memory-check", "jobs": "--jobs",
         "model": "MODEL", "steps": "--steps", "max_minutes": "--minutes", "validation": "--validation",
         "timeout_s": "--timeout", "calling_aet": "--aet", "scheduler": "--scheduler", **followup_cli.FLAGS}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lungtumorrecon",
        description="Lung and lung-tumour segmentation and 3D tumour reconstruction from chest CT, "
        "written as a 3D Slicer scene. Not for clinical use.",
    )
    parser.add_argument("--version", action="version", version=f"lungtumorrecon {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="segment a CT and write the results folder")
    run.add_argument("input", help="DICOM folder, or NRRD/NHDR, NIfTI or MetaImage file")
    run.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    _add_method_options(run)
    run.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    run.add_argument("--quiet", action="store_true", help="no progress lines")

    demo = sub.add_parser("demo", help="run on the bundled sample CT (pyradiomics lung1)")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo; replaced if present)")
    demo.add_argument("--quiet", action="store_true")

    batch = sub.add_parser("batch", help="every case of a folder, each into OUT/CASENAME, with OUT/summary.csv")
    batch.add_argument("input_dir", metavar="INPUT_DIR",
                       help="folder of cases: image files or DICOM folders, seeds beside them as CASENAME.mrk.json")
    batch.add_argument("--out", required=True, help="output folder; cases already finished there are skipped")
    batch.add_argument("--jobs", type=int, help="cases run at once on this machine (default: 1)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="run the cases on a Dask cluster: its scheduler "
                       "(tcp://HOST:8786; folders shared by the workers), or local:N for N workers here")
    _add_method_options(batch, per_case=False)
    batch.add_argument("--quiet", action="store_true", help="no progress bar")

    app = sub.add_parser("app", help="the web app: the LungTumorRecon panel and Slicer's views in a browser")
    app_launch.add_arguments(app)

    ft = sub.add_parser("finetune", help="adapt a deep tumour model to a folder of corrected cases (new weights)")
    ft.add_argument("model", metavar="MODEL", help="deep tumour model: r3d-dense-unet, dense-highres3dnet-v1, "
                    "dense-highres3dnet-v2 or resunet")
    ft.add_argument("--cases", required=True, type=Path, metavar="DIR",
                    help="folder of CASE.nrrd (or DICOM folder CASE/) + CASE.seg.nrrd with a 'tumor' segment")
    ft.add_argument("--out", required=True, type=Path, help="output folder: model.safetensors and model.json")
    ft.add_argument("--steps", type=int, default=200, help="training steps at most (default: 200)")
    ft.add_argument("--minutes", type=float, help="stop training after this many minutes")
    ft.add_argument("--validation", default="auto", choices=("auto", "held-out", "synthetic", "training"),
                    help="validate on held-out cases (3 or more), else synthetic chests, else the training cases")
    ft.add_argument("--device", default="auto", choices=methods.DEVICES, help="auto uses CUDA when present")
    ft.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    ft.add_argument("--quiet", action="store_true", help="no progress lines")

    ev = sub.add_parser("evaluate", help="compare a segmentation with a reference label; prints JSON")
    ev.add_argument("--pred", required=True, help="predicted segmentation (.seg.nrrd or label image)")
    ev.add_argument("--ref", required=True, help="reference label image (voxels above the threshold count)")
    ev.add_argument("--segment", default="tumor", help="segment name in --pred (default: tumor)")
    ev.add_argument(
        "--ref-threshold", type=float, default=None, help="reference voxels >= T count (vote maps); default: > 0"
    )
    pacs = "AET@HOST:PORT (DIMSE) or http(s)://HOST/.../dicom-web (DICOMweb)"
    send = sub.add_parser("send", help="send a results folder's DICOM files (SEG, SR) to a PACS")
    send.add_argument("folder", metavar="DIR", help="results folder of run: its *.dcm files are sent")
    send.add_argument("--to", required=True, metavar="ADDRESS", help=f"the PACS: {pacs}")
    fetch = sub.add_parser("fetch", help="fetch a study's CT series from a PACS into a folder, ready for run")
    fetch.add_argument("study_uid", metavar="STUDY_UID", help="the StudyInstanceUID")
    fetch.add_argument("--from", dest="source", required=True, metavar="ADDRESS", help=f"the PACS: {pacs}")
    fetch.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    fetch.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    for p in (send, fetch):
        p.add_argument("--aet", default="LUNGTUMORRECON", help="our calling AE title (DIMSE; default: LUNGTUMORRECON)")
        p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait (default: 30)")
    followup_cli.add_parser(sub)
    return parser


def _add_method_options(p: argparse.ArgumentParser, per_case: bool = True) -> None:
    """The run options; ``per_case`` adds those that name one case's files (not for batch)."""
    if per_case:
        p.add_argument("--seeds", type=Path, help="Slicer markups file (.mrk.json): tumor / right lung / left lung points")
    p.add_argument(
        "--lungs", default=methods.DEFAULT_LUNGS, choices=methods.LUNG_METHODS,
        help=f"lung method (default: {methods.DEFAULT_LUNGS}, the best available by `make bench`)",
    )
    p.add_argument(
        "--tumor", default=None, choices=methods.TUMOR_METHODS,
        help=f"tumour method (default: {methods.DEFAULT_TUMOR}: from each tumor seed, or without one the best "
        "automatic candidate in the lungs; none when --tumor-mask or --lungs-from brings the tumour)",
    )
    p.add_argument(
        "--tumor-per-slice", action="store_true",
        help="cluster each axial slice of the tumour's neighbourhood on its own, as the paper does (default: in 3D)",
    )
    if per_case:
        p.add_argument("--tumor-mask", type=Path, help="tumour mask image in the same patient space (voxels > 0), "
                       "or a DICOM SEG or RTSTRUCT of the CT's series")
        p.add_argument(
            "--lungs-from", type=Path, metavar="SEG",
            help="start from the lungs (and tumour) of an existing segmentation.seg.nrrd, DICOM SEG or RTSTRUCT "
            "instead of computing them",
        )
        p.add_argument("--roi", metavar="NAME",
                       help="RTSTRUCT ROI or SEG segment label to read from --tumor-mask / --lungs-from")
        p.add_argument(
            "--lung-correction", type=Path, metavar="FILE",
            help="corrected contour of one lung on one slice (markups closed curve .mrk.json named 'right lung' or "
            "'left lung', or a label image of that slice); that lung is re-propagated from it, the rest kept",
        )
    p.add_argument(
        "--recon", default=methods.DEFAULT_RECON, choices=methods.RECON_METHODS,
        help=f"tumour surface method (default: {methods.DEFAULT_RECON})",
    )
    p.add_argument("--device", default="auto", choices=methods.DEVICES, help="auto uses CUDA when present")
    p.add_argument("--weights", type=Path, help="weights file for a deep tumour method")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="run even when the estimated peak memory is above what the machine has free")
    p.add_argument("--recon-weights", type=Path, metavar="FILE",
                   help="safetensors weights for --recon gan of the same architecture (default: the shipped model)")
    p.add_argument("--no-dicom", action="store_true",
                   help="for a DICOM CT, do not write the DICOM SEG and SR (segmentation.dcm, measurements.dcm)")


def _options_from_args(args: argparse.Namespace) -> PipelineOptions:
    """The one place the CLI's arguments become options (run, and batch without per-case files)."""
    return PipelineOptions(
        lungs=args.lungs,
        tumor=args.tumor,
        recon=args.recon,
        device=args.device,
        weights=args.weights,
        recon_weights=args.recon_weights,
        seeds_path=getattr(args, "seeds", None),
        tumor_mask_path=getattr(args, "tumor_mask", None),
        lungs_from=getattr(args, "lungs_from", None),
        lung_correction=getattr(args, "lung_correction", None),
        roi=getattr(args, "roi", None),
        tumor_per_slice=args.tumor_per_slice,
        memory_check=not args.skip_memory_check,
    )


def _run_args(options: PipelineOptions) -> list[str]:
    """The ``run`` flags that give each case of a batch these options (not the per-case files)."""
    run_args = ["--lungs", options.lungs, "--recon", options.recon, "--device", options.device]
    if options.tumor is not None:
        run_args += ["--tumor", options.tumor]
    if options.tumor_per_slice:
        run_args.append("--tumor-per-slice")
    if not options.memory_check:
        run_args.append("--skip-memory-check")
    for flag, value in (("--weights", options.weights), ("--recon-weights", options.recon_weights)):
        if value is not None:
            run_args += [flag, str(Path(value).resolve())]
    return run_args


def cmd_run(args: argparse.Namespace) -> int:
    from LungTumorReconLib.io.output_folder import check_output_dir, write_result
    from LungTumorReconLib.pipeline.job import stop_with_parent
    from LungTumorReconLib.pipeline.run import run_pipeline

    stop_with_parent()  # a case of batch: it ends with the batch or Dask worker that started it
    progress = _Progress(args.quiet)
    options = _options_from_args(args)
    check_output_dir(args.out, args.overwrite)  # refuse before any work
    result = run_pipeline(args.input, options, progress)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    out = write_result(result, args.out, args.overwrite, seeds_path=str(args.seeds) if args.seeds else None,
                       progress=progress, dicom=not args.no_dicom)
    progress(ProgressEvent(Step.DONE, f"done: {out}"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The bundled sample with the default (best) methods, from the shipped tumour seed.

    The computed tumour is scored against the shipped reference label (which the run never
    sees).
    """
    from LungTumorReconLib.evaluation import compare_masks
    from LungTumorReconLib.io.output_folder import write_result
    from LungTumorReconLib.pipeline.run import run_pipeline

    progress = _Progress(args.quiet)
    options = PipelineOptions(seeds_path=SAMPLE_SEEDS)
    result = run_pipeline(SAMPLE_CT, options, progress)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    out = write_result(result, args.out, overwrite=True, seeds_path=str(SAMPLE_SEEDS), progress=progress)
    print(f"demo written to {out.resolve()}")
    m = result.methods
    print(f"  lungs: {m['lungs']['name']}; tumour: {m['tumor']['name']} from the shipped seed; model: {m['recon']['name']}")
    for name, mask in result.segments.items():
        print(f"  {name}: {float(mask.sum()) * result.ct.geometry.voxel_volume_ml:.1f} mL")
    if "tumor" in result.segments:
        from LungTumorReconLib.io.ct import read_label_on_grid

        reference = read_label_on_grid(SAMPLE_LABEL, result.ct.geometry)
        scores = compare_masks(result.segments["tumor"], reference, tuple(result.ct.geometry.spacing[::-1]))
        print(f"  tumour vs the shipped label: Dice {scores['dice']:.3f}, HD95 {scores['hd95_mm']:.1f} mm")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Exit code 0 when every case succeeded (or was already done), 3 when some failed."""
    from LungTumorReconLib.pipeline.batch import SUMMARY_FILE, run_batch
    from LungTumorReconLib.pipeline.run import check_options

    options = _options_from_args(args)
    run_args = _run_args(options) + (["--no-dicom"] if args.no_dicom else [])
    check_options(options)  # a refused method, device or weights file stops the batch before any case
    results = run_batch(args.input_dir, args.out, run_args, jobs=args.jobs, quiet=args.quiet,
                        scheduler=args.scheduler, options=options)
    failed = [r for r in results if r.status == "failed"]
    sys.stderr.write(f"{len(results) - len(failed)} of {len(results)} cases done; summary: "
                     f"{Path(args.out) / SUMMARY_FILE}\n")
    return 3 if failed else 0


def cmd_app(args: argparse.Namespace) -> int:
    return app_launch.cmd_app(args, SAMPLE_CT)


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tuning in this process; the shipped registry is never changed."""
    from LungTumorReconLib.finetune.training import finetune

    result = finetune(args.model, args.cases, args.out, steps=args.steps, max_minutes=args.minutes,
                      validation=args.validation, progress=_Progress(args.quiet), overwrite=args.overwrite,
                      device=args.device)
    dice = result.summary["validation"]
    print(f"weights written to {result.weights.resolve()} (validation Dice {dice['dice_before']:.3f} before, "
          f"{dice['dice_after']:.3f} after; on {dice['on'].split(':')[0]}). Not for clinical use.")
    print(f"use: lungtumorrecon run CT --tumor {result.summary['tumor_method']} --weights {result.weights.resolve()}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.evaluation import compare_masks
    from LungTumorReconLib.io.ct import read_label_on_grid
    from LungTumorReconLib.io.segmentation import read_segments

    segments, geometry = read_segments(args.pred)
    if args.segment not in segments:
        if set(segments) == {"label"}:
            pred = segments["label"]
        else:
            raise InputError(f"no segment {args.segment!r} (has: {', '.join(segments)})", args.pred)
    else:
        pred = segments[args.segment]
    threshold = 0.0 if args.ref_threshold is None else np.nextafter(args.ref_threshold, -np.inf)
    ref = read_label_on_grid(args.ref, geometry, threshold=threshold)
    metrics = compare_masks(pred, ref, tuple(geometry.spacing[::-1]))
    metrics.update({"segment": args.segment, "ref_threshold": args.ref_threshold})
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from LungTumorReconLib.dicom.pacs import dicom_files_of_run, parse_address, send_files

    report = send_files(dicom_files_of_run(args.folder), parse_address(args.to), args.aet, args.timeout)
    for warning in report.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    print(f"sent {report.files} DICOM files to {report.address}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from LungTumorReconLib.dicom.pacs import fetch_study, parse_address

    out = fetch_study(args.study_uid, parse_address(args.source), args.out, args.overwrite, args.aet, args.timeout)
    print(f"fetched the CT of study {args.study_uid} into {out}; ready for: lungtumorrecon run {out} --out ...")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {"run": cmd_run, "demo": cmd_demo, "app": cmd_app, "batch": cmd_batch, "evaluate": cmd_evaluate,
               "finetune": cmd_finetune, "send": cmd_send, "fetch": cmd_fetch,
               "followup": followup_cli.cmd_followup}[args.command]
    try:
        return handler(args)
    except LungTumorReconError as exc:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {exc.describe(FLAGS)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # an internal error: one line here, the traceback in a log file
        if args.debug:
            traceback.print_exc()
        fd, log = tempfile.mkstemp(prefix="lungtumorrecon-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            traceback.print_exc(file=f)
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (traceback in {log})\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
