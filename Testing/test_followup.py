"""The follow-up pipeline (issue 24) on small synthetic pairs with known truth (3 mm voxels):
a doubled tumour, a stable one and a shrinking one; followup.json against its schema; the
scene and the picture; and the command's refusals (exit 2, one error line, nothing written).

The pairs span the whole chest in z, so that the follow-up's move brings no empty slice into
the lungs; the registration runs without its deformable stage here (the benchmark has it)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import REPO  # noqa: F401  (puts the library and LungTumorReconDev on sys.path)

from LungTumorReconDev.dicom_series import write_ct_series
from LungTumorReconDev.followup_pairs import synthetic_followup_pair
from LungTumorReconLib.cli import main
from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.followup.assessment import build_followup_report, load_schema
from LungTumorReconLib.followup.pipeline import FollowupOptions, run_followup
from LungTumorReconLib.followup.recist import recist_response
from LungTumorReconLib.io.ct import write_image
from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json
from LungTumorReconLib.tumor.measurements import measure_tumor

GRID = dict(size=(112, 96, 112), spacing=(3.0, 3.0, 3.0))  # the whole chest in z, 3 mm
DAYS = 120


def _write_pair(pair, folder):
    folder.mkdir(parents=True, exist_ok=True)
    write_image(pair.baseline.array, pair.baseline.geometry, folder / "baseline.nrrd")
    write_image(pair.followup.array, pair.followup.geometry, folder / "followup.nrrd")
    (folder / "seeds.mrk.json").write_text(json.dumps(seeds_to_markups_json([Seed("tumor", pair.seed_lps)])))
    return folder


class _Pairs(dict):
    """growth factor -> (pair, folder with baseline.nrrd, followup.nrrd, seeds.mrk.json), made when asked."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp = tmp_path_factory

    def __missing__(self, factor):
        pair = synthetic_followup_pair(3, factor, shift_mm=(8.0, -5.0, 6.0), rotation_deg=3.0, breathing_mm=6.0,
                                       days=DAYS, radius_mm=18.0, **GRID)
        self[factor] = (pair, _write_pair(pair, self.tmp.mktemp(f"pair{factor}")))
        return self[factor]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return _Pairs(tmp_path_factory)


def _options(folder, pair):
    dates = (pair.baseline_date.isoformat(), pair.followup_date.isoformat())
    return FollowupOptions(seeds_path=folder / "seeds.mrk.json", dates=dates, deformable=False)


@pytest.fixture(scope="module")
def reports(pairs):
    """growth factor -> (result, followup.json document), run when asked."""

    class Reports(dict):
        def __missing__(self, factor):
            pair, folder = pairs[factor]
            result = run_followup(folder / "baseline.nrrd", folder / "followup.nrrd", _options(folder, pair))
            self[factor] = (result, build_followup_report(result))
            return self[factor]

    return Reports()


@pytest.fixture(scope="module")
def cli_run(pairs, tmp_path_factory):
    """The doubled pair through the command: (exit code, stdout, output folder)."""
    pair, folder = pairs[2.0]
    out = tmp_path_factory.mktemp("cli") / "out"
    args = ["followup", str(folder / "baseline.nrrd"), str(folder / "followup.nrrd"), "--out", str(out), "--seeds",
            str(folder / "seeds.mrk.json"), "--dates", pair.baseline_date.isoformat(), pair.followup_date.isoformat(),
            "--no-deformable", "--quiet"]
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(args)
    return code, stdout.getvalue(), out


def _truth_recist(pair) -> str:
    before = measure_tumor(pair.baseline_labels["tumor"], pair.baseline.array, pair.baseline.geometry, None)
    after = measure_tumor(pair.followup_labels["tumor"], pair.followup.array, pair.followup.geometry, None)
    return recist_response(before.longest_axial_diameter_mm, after.longest_axial_diameter_mm).response


@pytest.mark.slow  # a synthetic pair and a follow-up run: 5-12 s
def test_a_doubled_tumour_doubles_with_its_doubling_time_and_progresses(pairs, cli_run):
    pair, _ = pairs[2.0]
    code, stdout, out = cli_run
    assert code == 0
    report = json.loads((out / "followup.json").read_text())
    tumor = report["tumors"][0]
    truth_ratio = pair.followup_volume_ml / pair.baseline_volume_ml  # the labels' voxels: about 2
    assert 1.7 < truth_ratio < 2.2
    assert tumor["volume_ratio"] == pytest.approx(truth_ratio, rel=0.10)
    truth_vdt = DAYS * math.log(2) / math.log(truth_ratio)
    assert tumor["doubling_time_days"] == pytest.approx(truth_vdt, rel=0.20)
    assert tumor["doubling_time_days"] == pytest.approx(DAYS, rel=0.20)
    interval = tumor["doubling_time_interval_days"]
    assert interval["low"] <= tumor["doubling_time_days"] and report["dates"]["days"] == DAYS
    assert _truth_recist(pair) == "PD" and report["recist"]["response"] == "PD", report["recist"]
    assert tumor["growing"] and tumor["lung_rads"]["category"] == "4B"
    assert "RECIST 1.1: PD" in stdout and "not for clinical use" in stdout.lower()
    assert report["new_lesions"] == []


@pytest.mark.slow  # a synthetic pair and a follow-up run: 5-12 s
def test_a_stable_tumour_shows_no_measurable_growth(pairs, reports):
    pair, _ = pairs[1.0]
    result, report = reports[1.0]
    tumor = report["tumors"][0]
    assert tumor["found"] and tumor["volume_ratio"] == pytest.approx(1.0, abs=0.10)
    assert tumor["no_measurable_growth"] and tumor["doubling_time_interval_days"]["includes_infinity"]
    assert tumor["doubling_time_days"] is None  # no measurable change: no doubling time (the rule)
    assert not tumor["growing"] and report["recist"]["response"] == "SD"
    assert report["registration"]["lung_dice"] > 0.9
    # the follow-up tumour was found where the truth moved it
    truth = pair.map_points_lps(np.array(result.tumors[0].baseline.centroid_lps))[0]
    assert np.linalg.norm(np.subtract(tumor["followup"]["centroid_lps"], truth)) < 4.0


@pytest.mark.slow  # a synthetic pair and a follow-up run: 5-12 s
def test_a_shrinking_tumour_responds_partially(pairs, reports):
    pair, _ = pairs[0.25]
    _, report = reports[0.25]
    tumor = report["tumors"][0]
    assert tumor["volume_ratio"] == pytest.approx(pair.followup_volume_ml / pair.baseline_volume_ml, rel=0.10)
    assert tumor["doubling_time_days"] < 0  # a halving time
    assert _truth_recist(pair) == "PR" and report["recist"]["response"] == "PR", report["recist"]


@pytest.mark.slow  # a synthetic pair and a follow-up run: 5-12 s
def test_followup_json_matches_its_schema_and_the_scene_holds_the_registration(cli_run, reports):
    import jsonschema

    from LungTumorReconLib.mrml.scene import Scene

    _, _, out = cli_run
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for report in [json.loads((out / "followup.json").read_text()), reports[1.0][1], reports[0.25][1]]:
        jsonschema.validate(json.loads(json.dumps(report)), schema, cls=jsonschema.Draft202012Validator)
    assert {p.name for p in out.iterdir()} == {"followup.json", "scene.mrb", "followup.png", "baseline.seg.nrrd",
                                               "followup.seg.nrrd", "registration.h5"}
    from PIL import Image

    assert Image.open(out / "followup.png").size[0] == 640
    scene = Scene.load(out / "scene.mrb")
    try:
        volumes = {n.GetName(): n for n in scene.nodes_by_class("vtkMRMLScalarVolumeNode")}
        follow = next(n for name, n in volumes.items() if name.startswith("follow-up CT"))
        base = next(n for name, n in volumes.items() if name.startswith("baseline CT"))
        transform = follow.GetParentTransformNode()
        assert transform is not None and base.GetParentTransformNode() is None
        segs = {n.GetName(): n for n in scene.nodes_by_class("vtkMRMLSegmentationNode")}
        assert segs["followup segmentation"].GetParentTransformNode() is transform
        assert "tumor 1" in scene.segment_names(segs["baseline segmentation"])
        # the transform kept: Slicer's (RAS, from parent) is the registration's (LPS, baseline to follow-up)
        import SimpleITK as sitk

        saved = sitk.ReadTransform(str(out / "registration.h5"))
        lps = (90.0, 10.0, -30.0)
        ras = transform.GetTransformFromParent().TransformPoint(-lps[0], -lps[1], lps[2])
        assert np.allclose((-ras[0], -ras[1], ras[2]), saved.TransformPoint(lps), atol=1e-3)
    finally:
        scene.close()


def _refused(tmp_path, capsys, *args) -> str:
    out = tmp_path / "never"
    code = main(["followup", *map(str, args), "--out", str(out), "--quiet", "--no-deformable"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]
    return err[0]


def _tiny_series(folder, patient_id, study_date="20260101"):
    g = VolumeGeometry((24, 24, 6), (8.0, 8.0, 8.0), (-96.0, -96.0, 0.0))
    hu = np.full(g.shape_kji, -1000.0)
    hu[:, 2:22, 2:22] = 40.0
    hu[:, 6:18, 4:10] = hu[:, 6:18, 14:20] = -850.0
    write_ct_series(hu, g, folder, patient_id=patient_id)
    if study_date != "20260101":
        import pydicom

        for path in sorted(folder.iterdir()):
            ds = pydicom.dcmread(path)
            ds.StudyDate = study_date
            ds.save_as(path)
    return folder


def test_two_patients_or_a_follow_up_before_its_baseline_are_refused(tmp_path, capsys):
    a = _tiny_series(tmp_path / "a", "PATIENT-A")
    b = _tiny_series(tmp_path / "b", "PATIENT-B")
    message = _refused(tmp_path, capsys, a, b)
    assert "--allow-different-patients" in message and "PATIENT-B" in message and str(b) in message
    earlier = _tiny_series(tmp_path / "earlier", "PATIENT-A", study_date="20251201")
    message = _refused(tmp_path, capsys, a, earlier)
    assert str(earlier) in message and "before the baseline" in message and "2025-12-01" in message
    message = _refused(tmp_path, capsys, a, a, "--dates", "2026-03-01", "2026-01-01")
    assert "--dates" in message and "before the baseline date" in message
    assert "YYYY-MM-DD" in _refused(tmp_path, capsys, a, a, "--dates", "2026-03-01", "March")


@pytest.mark.slow  # a synthetic pair and a follow-up run: 5-12 s
def test_a_failed_registration_is_refused(tmp_path, capsys, pairs):
    pair, folder = pairs[1.0]
    lost = pair.followup.array.copy()
    lost[pair.followup_labels["left lung"]] = 40  # the left lung gone (a pneumonectomy): no lung overlap
    write_image(lost, pair.followup.geometry, tmp_path / "lost.nrrd")
    message = _refused(tmp_path, capsys, folder / "baseline.nrrd", tmp_path / "lost.nrrd", "--seeds",
                       folder / "seeds.mrk.json")
    assert "registration failed" in message and "lost.nrrd" in message


@pytest.mark.slow  # a follow-up run: about 7 s
def test_a_new_nodule_is_listed_and_counts_once_confirmed_from_a_baseline_segmentation(tmp_path, capsys, pairs,
                                                                                       cli_run):
    from scipy import ndimage as ndi

    pair, folder = pairs[2.0]
    _, _, previous = cli_run
    g = pair.followup.geometry
    # in the right lung, as far from its wall and from any vessel as can be
    clear = pair.followup_labels["right lung"] & (pair.followup.array < -500)
    depth = ndi.distance_transform_edt(clear, sampling=g.spacing[::-1])
    centre = np.array(np.unravel_index(int(np.argmax(depth)), depth.shape))
    kk, jj, ii = np.indices(g.shape_kji)
    ball = (((np.stack([kk, jj, ii], -1) - centre) * g.spacing[::-1]) ** 2).sum(-1) <= 6.0**2
    hu = pair.followup.array.copy()
    hu[ball] = 40
    write_image(hu, g, tmp_path / "with_nodule.nrrd")
    out = tmp_path / "out"
    code = main(["followup", str(folder / "baseline.nrrd"), str(tmp_path / "with_nodule.nrrd"), "--out", str(out),
                 "--baseline-seg", str(previous / "baseline.seg.nrrd"), "--dates", "2026-01-01", "2026-05-01",
                 "--confirm-new", "--no-deformable", "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "followup.json").read_text())
    assert [t["tracking_id"] for t in report["tumors"]] == ["tumor 1"] and report["methods"]["tumor"]["name"] == "from-file"
    new = [n for n in report["new_lesions"] if np.linalg.norm(np.subtract(n["centroid_lps"], g.kji_to_lps(centre))) < 6]
    assert len(new) == 1 and new[0]["confirmed"] and new[0]["measurement"]["volume_ml"] > 0.5, report["new_lesions"]
    assert new[0]["lung_rads"]["category"] == "4B"  # a new solid nodule of 12 mm
    assert report["recist"]["response"] == "PD" and report["recist"]["rule"] == "new lesion"
