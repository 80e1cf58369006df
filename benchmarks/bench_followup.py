"""Follow-up (issue 24): pairs with known growth, motion and dates, through ``run_followup``
and its outputs, as ``lungtumorrecon followup`` runs them. Not for clinical use.

* Synthetic pairs (:func:`synthetic_followup_pair`): the same thorax twice, the tumour's volume
  times 0.5-3, the follow-up moved 5-15 mm, turned 2-5 degrees and breathing 6-12 mm, on a
  2 x 2 x 2.5 mm grid that holds the whole chest;
* real pairs (:func:`real_followup_pair`) from lung1, LIDC-IDRI-0001 and the IBSI crop: the same
  CT with the tumour grown or shrunk by painting its own HU (or the surrounding lung's) into a
  band around it, the new edge with the old edge's partial-volume profile. An approximation of
  growth: the band has the tumour's HU distribution but not its texture, and the rest of the
  lung is unchanged apart from the motion;
* one 512 x 512 x 150 pair for time and memory.

The baseline tumour is seeded the way a clinician clicks: a point inside it on its largest axial
section, off its centre by 30-60 % of its radius (not the oracle centre). The follow-up's slices
beyond the baseline's field of view, which the pair generator fills with air (-1000 HU), repeat
the nearest slice here, as a scanner would image the anatomy continuing: with air there, the
threshold lungs leak out through those slices (a real follow-up has no empty slices).

Truth: volumes of the pair's labels (the follow-up's moved by nearest-neighbour resampling, and
compressed by the breathing field); RECIST from the labels' longest axial diameters. Each pair
runs with and without the registration's deformable stage, each in a fresh process, so that its
peak resident memory is its own (reading both CTs and writing the folder included).

Run: python benchmarks/bench_followup.py [--quick]  (in make bench)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from harness import DATA, REPO, table
from scipy import ndimage as ndi

from LungTumorReconDev.followup_pairs import real_followup_pair, synthetic_followup_pair
from LungTumorReconDev.tumor_datasets import read_real_case
from LungTumorReconLib.followup.recist import recist_response
from LungTumorReconLib.io.ct import CTVolume, write_image
from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json
from LungTumorReconLib.tumor.measurements import measure_tumor

GRID = dict(size=(192, 160, 136), spacing=(2.0, 2.0, 2.5))  # 384 x 320 x 340 mm: the whole chest
BIG_GRID = dict(size=(512, 512, 150), spacing=(0.7, 0.7, 2.5))
SYNTHETIC = [  # name, growth factor, shift (mm), rotation (deg), breathing (mm), days, radius (mm)
    ("synthetic halved", 0.5, (5.0, -3.0, 4.0), 2.0, 6.0, 90, 14.0),
    ("synthetic stable", 1.0, (10.0, 6.0, -5.0), 4.0, 8.0, 180, 12.0),
    ("synthetic x1.5", 1.5, (-8.0, 10.0, 6.0), 3.0, 10.0, 120, 12.0),
    ("synthetic doubled", 2.0, (12.0, -8.0, 5.0), 5.0, 8.0, 100, 11.0),
    ("synthetic tripled", 3.0, (15.0, 5.0, -8.0), 2.5, 12.0, 150, 10.0),
]
REAL = [  # case, grow (mm; negative shrinks), shift (mm), rotation (deg), breathing (mm), days
    ("lung1", 3.0, (6.0, -4.0, 5.0), 3.0, 6.0, 120),
    ("LIDC-IDRI-0001", -5.0, (8.0, 5.0, 2.0), 2.0, 4.0, 90),
    ("IBSI GTV", 0.0, (-6.0, 8.0, 3.0), 3.0, 6.0, 60),
]
LIMIT_S, LIMIT_GB = 120.0, 8.0
RATIO_TOL, VDT_TOL, VDT_MIN_CHANGE = 0.10, 0.20, 0.25

_CHILD = r"""
import json, sys, time
from LungTumorReconLib.followup.output import write_followup
from LungTumorReconLib.followup.pipeline import FollowupOptions, run_followup
from LungTumorReconLib.pipeline.memory import peak_rss_bytes

folder, deformable, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
dates = json.loads(open(f"{folder}/dates.json").read())
options = FollowupOptions(seeds_path=f"{folder}/seeds.mrk.json", dates=tuple(dates), deformable=deformable)
t0 = time.perf_counter()
result = run_followup(f"{folder}/baseline.nrrd", f"{folder}/followup.nrrd", options)
t1 = time.perf_counter()
write_followup(result, out)
t2 = time.perf_counter()
print(json.dumps({"run_s": t1 - t0, "write_s": t2 - t1, "peak_gb": peak_rss_bytes() / 2**30,
                  "timings": result.timings_s}))
"""


def clinician_click(mask: np.ndarray, ct: CTVolume, rng: np.random.Generator) -> tuple[float, float, float]:
    """A point inside the tumour on its largest axial section, 30-60 % of its radius off its centre."""
    g = ct.geometry
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    section = mask[k]
    spacing = np.array(g.spacing[1::-1])  # (j, i) mm
    depth = ndi.distance_transform_edt(section, sampling=spacing)
    jj, ii = np.nonzero(section)
    centre = np.array([jj.mean(), ii.mean()])
    radius = math.sqrt(section.sum() * spacing.prod() / math.pi)
    off = np.sqrt((((np.stack([jj, ii], 1) - centre) * spacing) ** 2).sum(1))
    ok = (off >= 0.3 * radius) & (off <= 0.6 * radius) & (depth[jj, ii] >= min(2.0, radius / 3))
    n = rng.choice(np.flatnonzero(ok)) if ok.any() else int(np.argmax(depth[jj, ii]))
    return tuple(float(v) for v in g.kji_to_lps(np.array([k, jj[n], ii[n]], float)))


def continue_anatomy(pair) -> None:
    """Fill the follow-up's voxels from beyond the baseline's field of view with the nearest
    voxel inside it (module docstring), in place."""
    g = pair.followup.geometry
    ones = sitk.Image(list(g.size), sitk.sitkUInt8) + 1
    g.apply_to_sitk(ones)
    inside = sitk.GetArrayFromImage(sitk.Resample(ones, ones, pair.motion.resampling_transform(g),
                                                  sitk.sitkNearestNeighbor, 0)) > 0
    if inside.all():
        return
    outside = ~inside
    idx = ndi.distance_transform_edt(outside, return_distances=False, return_indices=True)
    pair.followup.array[outside] = pair.followup.array[tuple(i[outside] for i in idx)]


def truth_of(pair) -> dict:
    """Volume ratio and VDT from the pair's labels; RECIST from the baseline label's longest axial
    diameter and, for a synthetic pair, the same times the scale of its shapes (growth^(1/3): the
    moved follow-up label's jagged outline would add a voxel), for a real pair the moved label's."""
    ratio = pair.followup_volume_ml / pair.baseline_volume_ml
    vdt = pair.days * math.log(2) / math.log(ratio) if abs(ratio - 1) > 1e-9 else None
    before = measure_tumor(pair.baseline_labels["tumor"], pair.baseline.array, pair.baseline.geometry, None)
    if "radii_mm" in pair.info:
        after = before.longest_axial_diameter_mm * pair.info["radii_mm"][1] / pair.info["radii_mm"][0]
    else:
        after = measure_tumor(pair.followup_labels["tumor"], pair.followup.array, pair.followup.geometry,
                              None).longest_axial_diameter_mm
    return {"ratio": ratio, "vdt": vdt, "recist": recist_response(before.longest_axial_diameter_mm, after).response,
            "diameter change %": 100 * (after / before.longest_axial_diameter_mm - 1)}


def write_pair(pair, folder: Path, rng: np.random.Generator) -> dict:
    continue_anatomy(pair)
    folder.mkdir(parents=True)
    write_image(pair.baseline.array, pair.baseline.geometry, folder / "baseline.nrrd")
    write_image(pair.followup.array, pair.followup.geometry, folder / "followup.nrrd")
    click = clinician_click(pair.baseline_labels["tumor"], pair.baseline, rng)
    (folder / "seeds.mrk.json").write_text(json.dumps(seeds_to_markups_json([Seed("tumor", click)])))
    (folder / "dates.json").write_text(json.dumps([pair.baseline_date.isoformat(), pair.followup_date.isoformat()]))
    truth = truth_of(pair)
    centroid = pair.baseline.geometry.kji_to_lps(np.argwhere(pair.baseline_labels["tumor"]).mean(axis=0))
    truth["centroid_lps"], truth["mapped_lps"] = centroid, pair.map_points_lps(centroid)[0]
    return truth


def run_child(folder: Path, deformable: bool) -> dict:
    out = folder / ("out-deformable" if deformable else "out-affine")
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'LungTumorRecon'}:{REPO}")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), "1" if deformable else "0", str(out)],
                          capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["report"] = json.loads((out / "followup.json").read_text())
    measured["transform"] = sitk.ReadTransform(str(out / "registration.h5"))
    return measured


def row_of(name: str, truth: dict, measured: dict, deformable: bool) -> dict:
    row = {"pair": name, "registration": "+ B-spline" if deformable else "affine", "truth ratio": truth["ratio"],
           "truth VDT (d)": truth["vdt"], "RECIST truth": truth["recist"],
           "truth diam. %": truth["diameter change %"]}
    if "error" in measured:
        row["RECIST"] = "error: " + measured["error"][:60]
        return row
    report = measured["report"]
    tumor = report["tumors"][0]
    interval = tumor["doubling_time_interval_days"] or {}
    mapped = np.array(measured["transform"].TransformPoint(tuple(float(v) for v in truth["centroid_lps"])))
    row.update({
        "ratio": tumor["volume_ratio"], "ratio err %": 100 * (tumor["volume_ratio"] / truth["ratio"] - 1),
        "VDT (d)": tumor["doubling_time_days"], "VDT measured (d)": tumor["doubling_time_measured_days"],
        # the measured VDT: the report's is null where the change lies within the partial-volume rim
        "VDT err %": (100 * (tumor["doubling_time_measured_days"] / truth["vdt"] - 1)
                      if tumor["doubling_time_measured_days"] and truth["vdt"] else None),
        "VDT interval": f"[{_days(interval.get('low'))}, {_days(interval.get('high'))}]" if interval else "–",
        "no meas. growth": tumor["no_measurable_growth"], "RECIST": report["recist"]["response"],
        "diam. %": tumor["longest_diameter_change_percent"],
        "new": len(report["new_lesions"]), "lung Dice": report["registration"]["lung_dice"],
        "map err (mm)": float(np.linalg.norm(mapped - truth["mapped_lps"])),
        "time (s)": measured["run_s"] + measured["write_s"], "write (s)": measured["write_s"],
        "peak (GB)": measured["peak_gb"], "found": tumor["found"]})
    return row


def _days(value) -> str:
    return "inf" if value is None else f"{value:.0f}"


def synthetic_pairs(quick: bool):
    for name, factor, shift, rotation, breathing, days, radius in SYNTHETIC[::2] if quick else SYNTHETIC:
        yield name, synthetic_followup_pair(7, factor, shift_mm=shift, rotation_deg=rotation, breathing_mm=breathing,
                                            days=days, radius_mm=radius, **GRID)


def real_pairs():
    for name, grow, shift, rotation, breathing, days in REAL:
        case = read_real_case(name, DATA)
        ct = CTVolume(np.rint(case.hu).astype(np.int16), case.geometry)
        yield f"{name} {grow:+.0f} mm", real_followup_pair(ct, case.mask, grow, shift_mm=shift, rotation_deg=rotation,
                                                           breathing_mm=breathing, days=days)


COLUMNS = ["pair", "registration", "truth ratio", "ratio", "ratio err %", "truth VDT (d)", "VDT (d)", "VDT measured (d)",
           "VDT err %",
           "VDT interval", "no meas. growth", "truth diam. %", "diam. %", "RECIST truth", "RECIST", "new", "lung Dice", "map err (mm)",
           "time (s)", "peak (GB)"]


def verdicts(rows: list[dict], big: dict | None) -> list[str]:
    ok = [r for r in rows if "ratio" in r]
    failed = [r["pair"] + " (" + r["registration"] + ")" for r in rows if "ratio" not in r]
    bad_ratio = [f"{r['pair']} ({r['registration']}): {r['ratio err %']:+.1f} %" for r in ok
                 if abs(r["ratio err %"]) > 100 * RATIO_TOL]
    vdt_rows = [r for r in ok if abs(r["truth ratio"] - 1) >= VDT_MIN_CHANGE]
    bad_vdt = [f"{r['pair']} ({r['registration']}): " + ("none" if r["VDT err %"] is None else f"{r['VDT err %']:+.1f} %")
               for r in vdt_rows if r["VDT err %"] is None or abs(r["VDT err %"]) > 100 * VDT_TOL]
    unmeasured = [f"{r['pair']} ({r['registration']})" for r in vdt_rows if r["VDT (d)"] is None]
    bad_recist = [f"{r['pair']} ({r['registration']}): {r['RECIST']} vs {r['RECIST truth']}" for r in ok
                  if r["RECIST"] != r["RECIST truth"]]
    stable = [r for r in ok if abs(r["truth ratio"] - 1) < 0.1]
    bad_stable = [f"{r['pair']} ({r['registration']})" for r in stable
                  if not (r["no meas. growth"] and r["RECIST"] == "SD")]
    peak = max([r["peak (GB)"] for r in ok] + ([big["peak (GB)"]] if big and "peak (GB)" in big else []))
    lines = [f"- runs that failed: {', '.join(failed) or 'none'}",
             f"- volume ratio within {RATIO_TOL:.0%} of the truth: {_verdict(bad_ratio)}",
             f"- VDT within {VDT_TOL:.0%} where the volume changes by {VDT_MIN_CHANGE:.0%} or more (the measured "
             f"VDT): {_verdict(bad_vdt)}",
             f"- of those, reported as no measurable change (null doubling time, the interval includes infinity): "
             f"{', '.join(unmeasured) or 'none'}",
             f"- the right RECIST category in every case: {_verdict(bad_recist)}",
             f"- stable reported as stable (no measurable growth and SD): {_verdict(bad_stable)}",
             f"- peak memory within {LIMIT_GB:.0f} GB: {'met' if peak <= LIMIT_GB else 'MISSED'} (largest {peak:.2f} GB)"]
    if big is not None:
        t = big.get("time (s)")
        lines.append(f"- a 512 x 512 x 150 pair under {LIMIT_S:.0f} s: "
                     + (f"{'met' if t < LIMIT_S else 'MISSED'} ({t:.1f} s with the B-spline, writing included)"
                        if t is not None else f"MISSED ({big.get('RECIST')})"))
    return lines


def _verdict(missed: list[str]) -> str:
    return "met" if not missed else "MISSED: " + "; ".join(missed)


def peers(rows: list[dict]) -> list[dict]:
    """Each pair's B-spline run beside its affine-only run, as ratios."""
    out = []
    for affine in (r for r in rows if r["registration"] == "affine" and "ratio" in r):
        spline = next((r for r in rows if r["pair"] == affine["pair"] and r is not affine and "ratio" in r), None)
        if spline is None:
            continue
        out.append({"pair": affine["pair"], "map err affine (mm)": affine["map err (mm)"],
                    "map err B-spline (mm)": spline["map err (mm)"],
                    "map err ratio": spline["map err (mm)"] / max(affine["map err (mm)"], 1e-6),
                    "lung Dice ratio": spline["lung Dice"] / affine["lung Dice"],
                    "|ratio err| B-spline / affine": abs(spline["ratio err %"]) / max(abs(affine["ratio err %"]), 1e-6),
                    "time ratio": spline["time (s)"] / affine["time (s)"],
                    "peak ratio": spline["peak (GB)"] / affine["peak (GB)"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three synthetic pairs, no real or 512 pair")
    args = parser.parse_args()
    rng = np.random.default_rng(24)
    rows, big = [], None
    with tempfile.TemporaryDirectory(prefix="bench-followup-") as tmp:
        sources = [*synthetic_pairs(args.quick), *([] if args.quick else real_pairs())]
        for n, (name, pair) in enumerate(sources):
            folder = Path(tmp) / f"pair{n}"
            truth = write_pair(pair, folder, rng)
            del pair
            for deformable in (False, True):
                rows.append(row_of(name, truth, run_child(folder, deformable), deformable))
        if not args.quick:
            pair = synthetic_followup_pair(11, 2.0, shift_mm=(10.0, -6.0, 5.0), rotation_deg=4.0, breathing_mm=10.0,
                                           days=120, radius_mm=14.0, **BIG_GRID)
            truth = write_pair(pair, Path(tmp) / "big", rng)
            del pair
            big = row_of("synthetic doubled 512x512x150", truth, run_child(Path(tmp) / "big", True), True)
    print("## Follow-up: pairs with known growth (truth vs measured)\n")
    print(table(rows, COLUMNS))
    print("\n## Follow-up: registration with the B-spline beside affine only (ratios: B-spline / affine)\n")
    print(table(peers(rows), ["pair", "map err affine (mm)", "map err B-spline (mm)", "map err ratio",
                              "lung Dice ratio", "|ratio err| B-spline / affine", "time ratio", "peak ratio"]))
    if big is not None:
        print("\n## Follow-up: a 512 x 512 x 150 pair (2 cores)\n")
        print(table([big], COLUMNS))
    print("\nTargets:\n")
    print("\n".join(verdicts(rows, big)))
    print("\nThe real pairs' growth is painted (module docstring): an approximation, not real follow-ups. "
          "Not for clinical use.")


if __name__ == "__main__":
    main()
