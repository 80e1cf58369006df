"""``lungtumorrecon followup``: its arguments and its handler (``cli.py`` registers them).

Light to import: the pipeline is imported when the command runs. Not for clinical use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from LungTumorReconLib.pipeline import methods

# FollowupOptions fields by their flag, for errors that name an option (merged into cli.FLAGS)
FLAGS = {"followup_seeds_path": "--followup-seeds", "baseline_seg": "--baseline-seg", "dates": "--dates",
         "confirm_new": "--confirm-new", "allow_different_patients": "--allow-different-patients",
         "deformable": "--no-deformable"}


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the ``followup`` subcommand to ``sub`` (argparse subparsers); returns its parser."""
    p = sub.add_parser("followup", help="compare a follow-up CT with its baseline: growth, doubling time, "
                       "RECIST, possible new lesions (not for clinical use)")
    p.add_argument("baseline", metavar="BASELINE", help="the earlier CT (DICOM folder or image file)")
    p.add_argument("followup", metavar="FOLLOWUP", help="the later CT of the same patient")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--seeds", type=Path, metavar="BASELINE_SEEDS",
                   help="baseline markups (.mrk.json): a tumor point on each tumour to follow")
    p.add_argument("--baseline-seg", type=Path, metavar="SEG", help="the baseline tumours as a .seg.nrrd ('tumor', "
                   "or 'tumor 1', 'tumor 2', ...), a label image, or a DICOM SEG / RTSTRUCT")
    p.add_argument("--followup-seeds", type=Path, metavar="FOLLOWUP_SEEDS",
                   help="follow-up markups: a tumor point on a followed tumour corrects where it is looked for; "
                   "one elsewhere confirms a new lesion")
    p.add_argument("--dates", nargs=2, metavar=("BASELINE_DATE", "FOLLOWUP_DATE"),
                   help="YYYY-MM-DD each, instead of the DICOM study dates (needed for the doubling time)")
    p.add_argument("--confirm-new", action="store_true", help="count every possible new lesion as new (RECIST PD)")
    p.add_argument("--allow-different-patients", action="store_true",
                   help="compare CTs whose DICOM PatientIDs differ (phantoms, tests)")
    p.add_argument("--no-deformable", dest="deformable", action="store_false",
                   help="register rigid + affine only, without the B-spline stage")
    p.add_argument("--lungs", default="threshold", choices=[m for m in methods.LUNG_METHODS if m != "none"],
                   help="lung method (default: threshold: as good as the snake on make bench, faster, no seeds)")
    p.add_argument("--tumor", default=None, choices=[m for m in methods.TUMOR_METHODS if m != "none"],
                   help=f"tumour method, the same at both times (default: {methods.DEFAULT_TUMOR})")
    p.add_argument("--tumor-per-slice", action="store_true", help="cluster each axial slice on its own")
    p.add_argument("--device", default="auto", choices=methods.DEVICES, help="auto uses CUDA when present")
    p.add_argument("--weights", type=Path, help="weights file for a deep tumour method")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="run even when the estimated peak memory is above what the machine has free")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def cmd_followup(args: argparse.Namespace) -> int:
    """Run the follow-up, write its folder, print one line per tumour and the response."""
    from LungTumorReconLib.cli import _Progress
    from LungTumorReconLib.followup.output import write_followup
    from LungTumorReconLib.followup.pipeline import FollowupOptions, run_followup
    from LungTumorReconLib.io.output_folder import check_output_dir
    from LungTumorReconLib.pipeline.events import ProgressEvent, Step

    progress = _Progress(args.quiet)
    options = FollowupOptions(
        lungs=args.lungs, tumor=args.tumor, device=args.device, weights=args.weights,
        tumor_per_slice=args.tumor_per_slice, memory_check=not args.skip_memory_check, seeds_path=args.seeds,
        followup_seeds_path=args.followup_seeds, baseline_seg=args.baseline_seg,
        dates=tuple(args.dates) if args.dates else None, confirm_new=args.confirm_new,
        allow_different_patients=args.allow_different_patients, deformable=args.deformable)
    check_output_dir(args.out, args.overwrite)  # refuse before any work
    result = run_followup(args.baseline, args.followup, options, progress)
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    out, report = write_followup(result, args.out, args.overwrite, progress)
    progress(ProgressEvent(Step.DONE, f"done: {out}"))
    for line in summary_lines(report):
        print(line)
    return 0


def summary_lines(report: dict) -> list[str]:
    """One line per tumour, the new lesions and the RECIST response, from ``followup.json``."""
    lines = []
    for t in report["tumors"]:
        before = t["baseline"]["volume_ml"]
        if not t["found"]:
            lines.append(f"{t['tracking_id']}: {before:.2f} mL -> {t['note']}")
            continue
        vdt, interval = t["doubling_time_days"], t["doubling_time_interval_days"]
        growth = (f"VDT {vdt:.0f} d" + (f" [{_days(interval['low'])}, {_days(interval['high'])}]" if interval else "")
                  if vdt is not None else "no doubling time")
        growth += ", no measurable growth" if t["no_measurable_growth"] else ""
        lines.append(f"{t['tracking_id']}: {before:.2f} -> {t['followup']['volume_ml']:.2f} mL "
                     f"({t['volume_change_percent']:+.1f} %), longest {t['baseline']['longest_axial_diameter_mm']:.1f}"
                     f" -> {t['followup']['longest_axial_diameter_mm']:.1f} mm; {growth}; "
                     f"Lung-RADS {t['lung_rads']['category']} (suggestion)")
    new = report["new_lesions"]
    if new:
        lines.append(f"possible new lesions: {len(new)} ({sum(n['confirmed'] for n in new)} confirmed)")
    recist = report["recist"]
    lines.append(f"RECIST 1.1: {recist['response'] or 'not evaluable'} ({recist['rule']}). Not for clinical use.")
    return lines


def _days(value: float | None) -> str:
    return "inf" if value is None else f"{value:.0f}"
