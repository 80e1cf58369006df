"""The Slicer panel's follow-up section (LungTumorReconModule/followup_panel.py) on a real MRML scene.

As in test_module_dicom.py, desktop Slicer's Qt (PythonQt's qt and ctk, slicer.i18n, the MRML
node selectors, the layout manager, the wait cursor and the message box) cannot run here: a mock
stands in for each, with the API the panel uses. The scene, the nodes, the slice and composite
nodes of the Red and Yellow views, the files written for the job and the finished folder loaded
back are the real ones; the job is a fake that ends as told (test_followup_job.py runs the real
FollowupJob), its folder a real follow-up of a small synthetic pair.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from fake_jobs import FakeFolderJob
from test_module_dicom import FakeWidget

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.pipeline.events import ProgressEvent, Step
from LungTumorReconLib.pipeline.session import Outcome

SIDE_BY_SIDE = 29  # slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView


class FakeTable(FakeWidget):
    def setColumnCount(self, n):
        self.columns = n

    def setHorizontalHeaderLabels(self, labels):
        self.headers = list(labels)

    def setRowCount(self, n):
        self.cells = [[None] * self.columns for _ in range(n)]

    def setItem(self, row, column, item):
        self.cells[row][column] = item.text


class FakeTimer(FakeWidget):
    def setInterval(self, ms):
        self.interval = ms

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeNodeSelector(FakeWidget):
    """qMRMLNodeComboBox: the node chosen is ``node``."""

    node = None

    def setMRMLScene(self, scene):
        self.scene = scene

    def currentNode(self):
        return self.node


def FakeJob(request, outcome, started: list) -> FakeFolderJob:
    """A FollowupJob that 'runs' for two polls and ends as told."""
    return FakeFolderJob(request, outcome, started, ProgressEvent(Step.LUNGS, "follow-up: lungs", 0.4), "follow-up")


@pytest.fixture
def followup_panel(monkeypatch, scene):
    """The followup_panel module under mocks of desktop Slicer's Qt, over ``scene`` (made first: a
    Scene made while ``slicer.app`` exists takes desktop Slicer's); errorDisplay's messages and
    the layouts asked for recorded."""
    import slicer

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    qt = types.ModuleType("qt")
    for name in ("QFormLayout", "QPushButton", "QLineEdit", "QHBoxLayout", "QLabel", "QProgressBar",
                 "QTableWidgetItem"):
        setattr(qt, name, FakeWidget)
    qt.QTableWidget, qt.QTimer = FakeTable, FakeTimer
    qt.Qt = types.SimpleNamespace(TextSelectableByMouse=1)
    ctk = types.ModuleType("ctk")
    ctk.ctkCollapsibleButton = ctk.ctkPathLineEdit = FakeWidget
    for name, stub in (("slicer.i18n", i18n), ("qt", qt), ("ctk", ctk)):
        monkeypatch.setitem(sys.modules, name, stub)
    fresh = ("LungTumorReconModule.followup_panel", "LungTumorReconModule.dependencies",
             "LungTumorReconModule.dicom_panel")
    for name in fresh:  # not a copy imported under another test's stubs
        monkeypatch.delitem(sys.modules, name, raising=False)
    errors, layouts = [], []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    monkeypatch.setattr(slicer, "qMRMLNodeComboBox", FakeNodeSelector, raising=False)
    layout_manager = types.SimpleNamespace(setLayout=layouts.append)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(layoutManager=lambda: layout_manager), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene.mrml, raising=False)
    module = importlib.import_module("LungTumorReconModule.followup_panel")
    monkeypatch.setattr(module, "ensurePythonDependencies", lambda *args, **kwargs: None)
    module.errors, module.layouts = errors, layouts
    yield module
    for name in fresh:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def finished_pair(tmp_path_factory):
    """A small synthetic pair and its follow-up folder (run in this process): (pair, folder)."""
    from LungTumorReconDev.followup_pairs import synthetic_followup_pair
    from LungTumorReconLib.followup.output import write_followup
    from LungTumorReconLib.followup.pipeline import FollowupOptions, run_followup
    from LungTumorReconLib.io.ct import write_image
    from LungTumorReconLib.io.seeds import Seed, seeds_to_markups_json

    pair = synthetic_followup_pair(1, 2.0, size=(112, 112, 40), spacing=(3.0, 3.0, 3.0), shift_mm=(8.0, -6.0, 0.0),
                                   rotation_deg=4.0, breathing_mm=8.0)
    folder = tmp_path_factory.mktemp("pair")
    write_image(pair.baseline.array, pair.baseline.geometry, folder / "b.nrrd")
    write_image(pair.followup.array, pair.followup.geometry, folder / "f.nrrd")
    (folder / "s.mrk.json").write_text(json.dumps(seeds_to_markups_json([Seed("tumor", pair.seed_lps)])))
    options = FollowupOptions(seeds_path=folder / "s.mrk.json", dates=("2026-01-01", "2026-04-01"), deformable=False)
    out, _ = write_followup(run_followup(folder / "b.nrrd", folder / "f.nrrd", options), folder / "out")
    return pair, out


@pytest.fixture
def scene():
    import slicer

    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    for tag in ("Red", "Yellow"):  # what desktop Slicer's layout manager makes for its views
        for cls in (slicer.vtkMRMLSliceNode, slicer.vtkMRMLSliceCompositeNode):
            node = cls()
            node.SetSingletonTag(tag)
            node.SetLayoutName(tag)
            scene.mrml.AddNode(node)
    yield scene
    scene.close()


def _panel(module, scene, pair, tmp_path, outcome=None, started=None):
    from LungTumorReconLib.io.seeds import Seed

    seeds = scene.add_seeds([Seed("tumor", pair.seed_lps)])
    p = types.SimpleNamespace(inputVolume=None, seeds=seeds, tumorMethod="gk", device="cpu")
    panel = module.FollowupPanel(FakeWidget(), lambda: p, "requirements.txt")
    panel.scene = scene
    panel.baselineSelector.node = scene.add_volume(pair.baseline.array, pair.baseline.geometry, name="baseline")
    panel.followupSelector.node = scene.add_volume(pair.followup.array, pair.followup.geometry, name="follow-up")
    panel.outputFolder.currentPath = str(tmp_path / "out")
    panel.jobFactory = lambda request: FakeJob(request, outcome, started if started is not None else [])
    return panel


def _run(panel) -> None:
    panel.runButton.click()
    while panel.job is not None:
        panel.poll()  # what the QTimer does


def test_a_finished_follow_up_is_shown_side_by_side(followup_panel, scene, finished_pair, tmp_path):
    from LungTumorReconLib.coordinates import lps_to_ras
    from LungTumorReconLib.followup.job import FollowupOutcome
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.io.seeds import read_seeds

    pair, out = finished_pair
    report = json.loads((out / "followup.json").read_text())
    done = FollowupOutcome(Outcome.DONE, f"follow-up done: {out}\nRECIST 1.1: SD. Not for clinical use.",
                           out_dir=out, report=report)
    started = []
    panel = _panel(followup_panel, scene, pair, tmp_path, done, started)
    panel.baselineDateEdit.text, panel.followupDateEdit.text = "2026-01-01", " 2026-04-01 "
    seen = {}
    real_factory = panel.jobFactory

    def factory(request):  # the files written for the job exist while it runs
        seen["baseline"] = read_ct(request.baseline).array
        seen["seeds"] = read_seeds(request.seeds)
        return real_factory(request)

    panel.jobFactory = factory
    _run(panel)
    assert followup_panel.errors == []
    request = started[0].request
    assert request.dates == ["2026-01-01", "2026-04-01"] and (request.tumor, request.device) == ("gk", "cpu")
    assert request.out_dir == str(tmp_path / "out") and np.array_equal(seen["baseline"], pair.baseline.array)
    assert np.allclose(seen["seeds"][0].lps, pair.seed_lps)  # the module's seeds, as baseline seeds
    assert not Path(request.baseline).exists()  # the inputs are removed once the job is done
    assert panel.statusLabel.text.startswith(f"follow-up done: {out}") and panel.progressBar.value == 100
    assert panel.runButton.enabled and not panel.cancelButton.enabled
    # the growth table, labelled not for clinical use
    assert panel.growthTable.headers[0] == "tumour" and panel.growthTable.cells[0][0] == "tumor 1"
    assert "not for clinical use" in panel.tableLabel.text
    # both CTs side by side, each with its own segmentation, linked, at the tumour
    assert followup_panel.layouts == [SIDE_BY_SIDE]
    base, fol = panel.baselineSelector.node, panel.followupSelector.node
    for tag, volume in (("Red", base), ("Yellow", fol)):
        composite = scene.mrml.GetSingletonNode(tag, "vtkMRMLSliceCompositeNode")
        assert composite.GetBackgroundVolumeID() == volume.GetID() and composite.GetLinkedControl()
    red = scene.mrml.GetSingletonNode("Red", "vtkMRMLSliceNode")
    centre = [red.GetSliceToRAS().GetElement(r, 3) for r in range(3)]
    assert np.allclose(centre, lps_to_ras(np.array(report["tumors"][0]["baseline"]["centroid_lps"])), atol=1e-3)
    segs = {n.GetName(): n for n in scene.nodes_by_class("vtkMRMLSegmentationNode")}
    display = segs["follow-up segmentation"].GetDisplayNode()
    yellow = scene.mrml.GetSingletonNode("Yellow", "vtkMRMLSliceNode")
    assert display.GetNumberOfViewNodeIDs() == 1 and display.GetNthViewNodeID(0) == yellow.GetID()
    assert fol.GetParentTransformNode() is not None  # aligned on the baseline
    panel.cleanup()  # what the module does as it closes: the panel stops observing the scene


def test_refusals_failures_and_cancel_are_one_message(followup_panel, scene, finished_pair, tmp_path):
    from LungTumorReconLib.followup.job import FollowupOutcome

    pair, _ = finished_pair
    failed = FollowupOutcome(Outcome.FAILED, "follow-up failed", error=InputError("bad date", option="dates"))
    started = []
    panel = _panel(followup_panel, scene, pair, tmp_path, failed, started)
    panel.outputFolder.currentPath = ""
    panel.runButton.click()
    panel.outputFolder.currentPath = str(tmp_path / "out")
    panel.baselineDateEdit.text = "2026-01-01"  # one date only
    panel.runButton.click()
    panel.baselineDateEdit.text = ""
    panel.followupSelector.node = panel.baselineSelector.node
    panel.runButton.click()
    assert followup_panel.errors == ["Follow-up: choose the output folder first",
                                     "Follow-up: Dates: give both dates, or none (the DICOM study dates are then used)",
                                     "Follow-up: the baseline and the follow-up are the same CT: select two"]
    assert started == [] and panel.job is None and panel._inputs is None
    panel.followupSelector.node = scene.add_volume(pair.followup.array, pair.followup.geometry, name="later")
    _run(panel)
    assert followup_panel.errors[-1] == "follow-up failed: Dates: bad date" and panel.progressBar.value == 0
    panel.runButton.click()
    panel.cancelButton.click()
    assert started[-1].cancelled and panel.job is None and panel.statusLabel.text.startswith("follow-up cancelled")
    assert len(followup_panel.errors) == 4 and panel._inputs is None
    assert scene.nodes_by_class("vtkMRMLSegmentationNode") == []  # nothing loaded
    panel.runButton.click()
    scene.mrml.Clear(0)  # the user closes the scene while it runs: its nodes could not show a result
    assert started[-1].cancelled and panel.job is None and len(followup_panel.errors) == 4
    panel.cleanup()


def test_ct_from_the_dicom_browser_goes_as_its_series_with_patient_and_date(followup_panel, scene, finished_pair,
                                                                           tmp_path, monkeypatch):
    """Two CTs loaded by Slicer's DICOM browser from one folder of both series: the job gets each
    series alone, so it reads the patient and the study dates (the database is a fake: desktop
    Slicer's cannot run here)."""
    import pydicom
    import slicer
    from test_module_dicom import FakeDatabase

    from LungTumorReconDev.dicom_series import write_ct_series
    from LungTumorReconLib.followup.pipeline import FollowupOptions, _check_pair
    from LungTumorReconLib.io.ct import read_ct

    pair, _ = finished_pair
    mixed = tmp_path / "database"  # a folder that Slicer's database references, with both series in it
    mixed.mkdir()
    for name, ct, date in (("b", pair.baseline, "20260105"), ("f", pair.followup, "20260407")):
        for path in write_ct_series(ct.array, ct.geometry, tmp_path / name, patient_id="P-7"):
            ds = pydicom.dcmread(path)
            ds.StudyDate = date
            ds.save_as(mixed / f"{name}-{path.name}")
    database = FakeDatabase(mixed)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    started = []
    panel = _panel(followup_panel, scene, pair, tmp_path, None, started)
    for node, name in ((panel.baselineSelector.node, "b"), (panel.followupSelector.node, "f")):
        uids = [uid for uid, (path, _) in database.headers.items() if Path(path).name.startswith(f"{name}-")]
        node.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    seen = {}

    def factory(request):
        cts = [read_ct(request.baseline), read_ct(request.followup)]
        warnings = []
        seen["check"] = _check_pair(*cts, None, FollowupOptions(), warnings)
        seen["slices"] = [ct.array.shape[0] for ct in cts]
        seen["warnings"] = warnings + [w for ct in cts for w in ct.warnings]
        return FakeJob(request, None, started)

    panel.jobFactory = factory
    panel.runButton.click()
    assert followup_panel.errors == []
    ids, dates, source = seen["check"]
    assert ids == ("P-7", "P-7") and source == "DICOM StudyDate or AcquisitionDate"
    assert [d.isoformat() for d in dates] == ["2026-01-05", "2026-04-07"]
    assert seen["slices"] == [pair.baseline.array.shape[0], pair.followup.array.shape[0]]
    assert not any("series found" in w for w in seen["warnings"]), seen["warnings"]  # each series alone
    panel.cancelButton.click()
    panel.cleanup()
