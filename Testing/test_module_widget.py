"""The Slicer module's Widget (LungTumorRecon.py and its sections in LungTumorReconModule/) on a
real MRML scene, with a fake stage runner (as SlicerNNUnet tests its Widget).

Desktop Slicer's Qt cannot run here (PythonQt, CTK, the Segment Editor widget, the timers, the
dialogs): a stand-in with the API the panel uses replaces each, one per object name of the .ui
(properties as attributes, a signal calls its slots). The scene, the segmentation, the seeds and
the results' nodes are the real ones (slicer-core); the Segment Editor's edits and undo are done
on the real segment as its effects and its undo do (the labelmap replaced in place, Slicer's own
vtkSegmentationHistory). The stage runs in this process (fake_jobs.InProcessPipelineJob inside the
library's StageSession), so its results are the pipeline's own.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from fake_jobs import InProcessPipelineJob
from slicer_stubs import scripted_module_stubs
from test_module_followup import FakeTimer as FollowupTimer

from conftest import REPO

UI_FILE = REPO / "LungTumorRecon" / "Resources" / "UI" / "LungTumorRecon.ui"


class Fake:
    """A PythonQt widget: properties are attributes; ``emit(signal, *args)`` calls its slots."""

    def __init__(self, *args, **kwargs):
        self.slots, self.items, self.rows = {}, {}, {}
        self.enabled, self.visible, self.checked, self.text, self.toolTip, self.value = True, True, False, "", "", 0
        self.current_row, self.table_node, self.added = -1, None, []
        self.text = args[0] if args and isinstance(args[0], str) else ""

    def connect(self, signal, slot):
        self.slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        for slot in self.slots.get(signal, []):
            slot(*args)

    def click(self):
        self.emit("clicked()")

    def toggle(self, checked: bool):
        self.checked = checked
        self.emit("toggled(bool)", checked)

    # combo boxes, tables, frames
    def setItemData(self, index, value, role):
        self.items[index, role] = value

    def setRowCount(self, n):
        self.rows = {r: {} for r in range(n)}

    def setItem(self, row, column, item):
        self.rows[row][column] = item.text

    def selectRow(self, row):
        self.current_row = row

    def currentRow(self):
        return self.current_row

    def setMRMLTableNode(self, node):
        self.table_node = node

    def layout(self):
        return self

    def addWidget(self, widget):
        self.added.append(widget)


class FakeTimer(FollowupTimer):
    """qt.QTimer: ``fire()`` is its timeout; ``singleShot(ms, call)`` calls at once."""

    active = False

    def fire(self):
        assert self.active, "the timer was not started"
        self.active = False
        self.slots["timeout()"]()

    @staticmethod
    def singleShot(ms, call):
        call()


class FakeEditor(Fake):
    """qMRMLSegmentEditorWidget: which segmentation, CT and segment it was given."""

    def setSegmentationNode(self, node):
        self.segmentation = node

    def setSourceVolumeNode(self, node):
        self.volume = node

    def setCurrentSegmentID(self, segment_id):
        self.segment_id = segment_id

    def setActiveEffect(self, effect):
        self.effect = effect


class ParameterNode:
    """The parameter node's fields with their defaults (the wrapper is Slicer's, not run here),
    observable as the Widget observes it (a real MRML node underneath)."""

    def __init__(self, cls):
        import slicer

        for name in cls.__annotations__:
            setattr(self, name, getattr(cls, name, None))
        self._node = slicer.vtkMRMLScriptedModuleNode()

    def AddObserver(self, *args):
        return self._node.AddObserver(*args)

    def RemoveObserver(self, *args):
        return self._node.RemoveObserver(*args)

    def connectGui(self, ui):
        return "tag"

    def disconnectGui(self, tag):
        pass


@pytest.fixture
def scene():
    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    yield scene
    scene.close()


@pytest.fixture
def module(monkeypatch, scene):
    """LungTumorRecon.py under stand-ins for desktop Slicer's Qt over ``scene`` (made first: a
    Scene made while ``slicer.app`` exists takes desktop Slicer's); errorDisplay's messages,
    the place mode and the seed-kind question recorded."""
    import slicer

    from LungTumorReconLib.pipeline import session

    asked = []
    qt = types.ModuleType("qt")
    qt.QTimer, qt.QTableWidgetItem = FakeTimer, Fake
    qt.Qt = types.SimpleNamespace(ToolTipRole=3)
    qt.QInputDialog = types.SimpleNamespace(getItem=lambda parent, title, text, items, current, editable:
                                            asked.append(text) or module.answer)
    for name, stub in scripted_module_stubs(REPO / "LungTumorRecon" / "Resources", qt).items():
        monkeypatch.setitem(sys.modules, name, stub)
    fresh = [n for n in sys.modules if n == "LungTumorRecon" or n.startswith("LungTumorReconModule.")]
    for name in fresh:  # not a copy imported under another test's stubs
        monkeypatch.delitem(sys.modules, name, raising=False)
    errors, placing = [], []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None, raising=False)
    markups = types.SimpleNamespace(SetActiveList=placing.append, StartPlaceMode=lambda persistent: None,
                                    JumpSlicesToLocation=lambda *args: None)
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(
        markups=types.SimpleNamespace(logic=lambda: markups),
        segmentations=types.SimpleNamespace(logic=lambda: scene.logics.segmentations)), raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(), raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene.mrml, raising=False)
    monkeypatch.setattr(session, "PipelineJob", InProcessPipelineJob)
    sys.path.insert(0, str(REPO / "LungTumorRecon"))
    module = importlib.import_module("LungTumorRecon")
    monkeypatch.setattr(module, "ensurePythonDependencies", lambda *args, **kwargs: None)
    monkeypatch.setattr(module, "pythonSlicerExecutable", lambda: None)
    module.errors, module.placing, module.asked, module.answer = errors, placing, asked, "tumour"
    yield module
    for name in [n for n in sys.modules if n == "LungTumorRecon" or n.startswith("LungTumorReconModule.")]:
        sys.modules.pop(name, None)


def fake_ui() -> types.SimpleNamespace:
    """One stand-in per object of the .ui, by its name."""
    names = {w.get("name") for w in ET.parse(UI_FILE).iter("widget")}
    return types.SimpleNamespace(**{name: Fake() for name in names})


@pytest.fixture
def widget(module):
    """The Widget wired to a stand-in .ui, a fake Segment Editor and a fake settle timer."""
    w = module.LungTumorReconWidget()
    w.editors, w.timer = [], FakeTimer()
    w.connectPanel(fake_ui(), module.LungTumorReconLogic(),
                   editorFactory=lambda tag: w.editors.append(FakeEditor()) or w.editors[-1], timer=w.timer)
    w.setParameterNode(ParameterNode(module.LungTumorReconParameterNode))
    return w


def run_to_the_end(widget):
    """What the panel's QTimer does: poll the stage until it has finished (here: at once)."""
    assert widget._stage.busy, widget._stage.statusLabel.text
    widget._stage.poll()
    assert not widget._stage.busy


# -- the method boxes ---------------------------------------------------------------------------------


def test_the_method_boxes_say_when_to_use_which_and_run_with_the_ids(widget, module):
    ui = widget.ui
    assert ui.tumorMethodComboBox.toolTip.startswith("How the tumour is segmented (the CLI's --tumor).")
    assert ui.deviceComboBox.items[0, 3] == "The GPU for networks when there is one, else the CPU."
    p = widget._parameterNode
    assert (p.lungMethod.value, p.tumorMethod.value, p.reconMethod.value, p.device.value) == (
        "snake", "gk", "interp-mc", "auto")
    p.tumorMethod, p.device = module.TumorMethod["r3d-dense-unet"], module.DeviceChoice.cpu
    options = widget._options()
    assert (options.tumor, options.device) == ("r3d-dense-unet", "cpu")


# -- seeds placed any way ---------------------------------------------------------------------------


def test_points_placed_with_the_lists_own_button_are_seeds(widget, module, scene):
    """A point added with the point list's own button (named 'Seeds-1', not a seed kind) is not
    refused: the panel asks what it is while no Place button was used, then takes the kind of the
    last one used. A point added by code keeps its label; a seed moved is read where it is."""
    from LungTumorReconLib.io.seeds import Seed
    from LungTumorReconLib.mrml.scene import Scene

    seeds = scene.add_seeds([])
    widget._parameterNode.seeds = seeds
    widget._checkCanApply()  # the parameter node changed: the panel follows its seeds node
    seeds.AddControlPoint(10.0, 20.0, -30.0)  # the list's own button
    assert module.asked == ["What is the point Seeds-1?"]
    assert seeds.GetNthControlPointLabel(0) == "tumor"
    widget.ui.placeRightLungSeedButton.click()
    assert module.placing == [seeds] and widget.ui.statusLabel.text == "Click in a view to place the right lung seed"
    seeds.AddControlPoint(-50.0, 5.0, -100.0)  # the click in a view that place mode waits for
    seeds.AddControlPoint(-60.0, 5.0, -100.0)  # then the list's own button again
    assert [seeds.GetNthControlPointLabel(i) for i in range(3)] == ["tumor", "right lung", "right lung"]
    assert len(module.asked) == 1
    Scene.add_seed(seeds, Seed("left lung", (1.0, 2.0, 3.0)))  # by code: its label is set right after
    assert seeds.GetNthControlPointLabel(3) == "left lung" and len(module.asked) == 1
    seeds.SetNthControlPointPositionWorld(0, -11.0, -21.0, -31.0)  # dragged in a view
    labels = [(s.label, s.lps) for s in Scene.seeds_from_node(seeds)]
    assert labels[0] == ("tumor", (11.0, 21.0, -31.0)) and len(labels) == 4


def test_a_point_whose_kind_is_not_given_is_one_message_at_run_time(widget, module, scene, small_case):
    from LungTumorReconLib.io.ct import read_ct

    ct = read_ct(small_case[0])
    p = widget._parameterNode
    p.inputVolume = scene.add_volume(ct.array, ct.geometry, "chest")
    p.seeds = scene.add_seeds([])
    widget._checkCanApply()
    module.answer = ""  # the question cancelled
    p.seeds.AddControlPoint(1.0, 2.0, 3.0)
    assert p.seeds.GetNthControlPointLabel(0) == "Seeds-1"
    widget.ui.applyTumorButton.click()
    assert module.errors == ["Tumour: seed 1 is labelled 'Seeds-1': rename it 'tumor', 'right lung' or 'left lung' "
                             "(double-click its label in the point list)"]
    assert not widget._stage.busy and widget.ui.applyTumorButton.enabled


def test_candidates_show_their_slice(module, small_case):
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.pipeline.session import Candidate

    panel = importlib.import_module("LungTumorReconModule.panel")
    g = read_ct(small_case[0]).geometry
    candidate = Candidate(rank=1, volume_ml=2.5, score=1.234, centroid_lps=tuple(g.kji_to_lps(np.array([7, 30, 20]))))
    cells = panel.candidateCells(candidate, g)
    assert cells[:4] == ("1", "2.50", "1.23", "8")  # slice 8 of the CT: k = 7
    assert cells[4] == ", ".join(f"{v:.1f}" for v in candidate.centroid_ras)


# -- correcting the tumour in the panel ---------------------------------------------------------------


def _tumour_rows(widget):
    from LungTumorReconLib.mrml.scene import Scene

    return Scene.table_rows(widget.ui.tumorsTableView.table_node)


def _axes(widget):
    from LungTumorReconLib.mrml.roles import Role
    from LungTumorReconLib.mrml.scene import Scene

    p = widget._parameterNode
    return [Scene.line_ends_lps(n) for n in widget.logic.presenter().nodes_for(Role.RECIST_AXIS, p.inputVolume)]


def _half(tumour: np.ndarray) -> np.ndarray:
    """The tumour with its half on one side (along i) erased, on every slice."""
    edited = tumour.copy()
    edited[:, :, : int(np.flatnonzero(tumour.any(axis=(0, 1))).mean())] = False
    return edited


def _edit_tumour(scene, segmentation, mask, geometry):
    """What a Segment Editor effect does: the segment's labelmap replaced in place."""
    import slicer

    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("tumor")
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(scene._oriented_image(mask, geometry), segmentation, segment_id,
                                     logic.MODE_REPLACE)


@pytest.fixture
def measured(widget, module, scene, small_case):
    """The small chest with its tumour segment, measured once with Update (recon: marching cubes)."""
    from LungTumorReconLib.io.ct import read_ct

    ct_path, _, _, tumour, _ = small_case
    ct = read_ct(ct_path)
    p = widget._parameterNode
    p.inputVolume = scene.add_volume(ct.array, ct.geometry, "chest")
    p.outputSegmentation = scene.set_segmentation({"tumor": tumour}, ct.geometry, reference_volume=p.inputVolume)
    p.reconMethod = module.ReconMethod.mc
    widget._checkCanApply()
    assert widget.ui.updateTumorButton.enabled and widget.ui.editTumorButton.enabled
    widget.ui.updateTumorButton.click()
    run_to_the_end(widget)
    assert module.errors == []
    return ct, tumour


def test_editing_the_tumour_updates_its_results_and_undo_restores_them(widget, module, scene, measured):
    """The tumour corrected in the Tumour section's editor: at the end of the edit the
    measurements, statistics, RECIST axes and model come from the edited segment; Segment
    Editor's undo brings the segment back, and with it the first results."""
    import slicer

    from LungTumorReconLib.mrml.roles import Role

    ct, tumour = measured
    p = widget._parameterNode
    first, first_axes = _tumour_rows(widget), _axes(widget)
    first_model = widget.logic.presenter().node_for(Role.TUMOR_MODEL, p.inputVolume)
    assert first[0]["voxels"] == int(tumour.sum()) and len(first_axes) == 2 and first_model is not None

    widget.ui.autoUpdateTumorCheckBox.toggle(True)
    widget.ui.editTumorButton.click()
    lung_editor, tumour_editor = widget.editors
    assert (tumour_editor.segmentation, tumour_editor.volume, tumour_editor.segment_id) == (
        p.outputSegmentation, p.inputVolume, "tumor")
    assert tumour_editor.visible and not lung_editor.visible
    history = slicer.vtkSegmentationHistory()  # Segment Editor's undo: the state saved before each edit
    history.SetSegmentation(p.outputSegmentation.GetSegmentation())
    history.SaveState()
    edited = _half(tumour)
    _edit_tumour(scene, p.outputSegmentation, edited, ct.geometry)
    assert widget.timer.active  # the edit has ended when no change follows
    widget.timer.fire()
    run_to_the_end(widget)
    assert not widget.timer.active  # the result going into the scene is no edit
    after = _tumour_rows(widget)
    assert after[0]["voxels"] == int(edited.sum()) < first[0]["voxels"]
    assert after[0]["volume_ml"] < first[0]["volume_ml"] and after[0]["mean_hu"] == pytest.approx(40.0)
    assert not np.allclose(_axes(widget)[1], first_axes[1])  # the short axis is half as long
    model = widget.logic.presenter().node_for(Role.TUMOR_MODEL, p.inputVolume)
    assert model is not first_model and scene.mrml.GetNodeByID(first_model.GetID()) is None

    history.SaveState()
    history.RestorePreviousState()  # Undo in the editor
    widget.timer.fire()
    run_to_the_end(widget)
    restored = _tumour_rows(widget)
    assert restored[0]["voxels"] == first[0]["voxels"]
    assert restored[0]["volume_ml"] == pytest.approx(first[0]["volume_ml"])
    assert restored[0]["longest_axial_diameter_mm"] == pytest.approx(first[0]["longest_axial_diameter_mm"])
    assert np.allclose(_axes(widget), first_axes)
    assert module.errors == []


def test_without_auto_update_the_button_measures_the_edit(widget, module, scene, measured):
    ct, tumour = measured
    p = widget._parameterNode
    first = _tumour_rows(widget)
    edited = _half(tumour)
    widget.ui.editTumorButton.click()
    _edit_tumour(scene, p.outputSegmentation, edited, ct.geometry)
    assert not widget.timer.active and _tumour_rows(widget) == first  # nothing by itself
    widget.ui.updateTumorButton.click()
    run_to_the_end(widget)
    assert _tumour_rows(widget)[0]["voxels"] == int(edited.sum())
    # a lung edit is not the tumour's: with auto-update on, it starts nothing
    import slicer

    lung = np.zeros_like(tumour)
    lung[:, :, :20] = True
    scene.set_segmentation({"right lung": lung}, ct.geometry, node=p.outputSegmentation)
    widget.ui.autoUpdateTumorCheckBox.toggle(True)
    lung[:, :, 15:] = False
    segment_id = p.outputSegmentation.GetSegmentation().GetSegmentIdBySegmentName("right lung")
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        scene._oriented_image(lung, ct.geometry), p.outputSegmentation, segment_id,
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    assert not widget.timer.active
    _edit_tumour(scene, p.outputSegmentation, tumour, ct.geometry)  # and the tumour's does
    assert widget.timer.active


# -- errors ---------------------------------------------------------------------------------------------


def test_errors_are_one_line_and_the_panel_stays_usable(widget, module, scene, small_case):
    """Every button's error goes to one message box line: the library's own as it phrases it, any
    other with its traceback as the details."""
    widget.ui.editLungButton.click()
    widget.ui.editTumorButton.click()
    assert module.errors == ["Correction: there is no segmentation yet: run the lungs first",
                             "Tumour correction: there is no segmentation yet: run the lungs first"]
    module.errors.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    widget.logic.startStage = broken
    from LungTumorReconLib.io.ct import read_ct

    ct = read_ct(small_case[0])
    widget._parameterNode.inputVolume = scene.add_volume(ct.array, ct.geometry, "chest")
    widget.ui.applyLungsButton.click()
    assert module.errors == ["Lungs failed: disk full"] and not widget._stage.busy
