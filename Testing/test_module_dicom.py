"""The Slicer panel's DICOM section (LungTumorReconModule/dicom_panel.py) on a real MRML scene.

Desktop Slicer's Qt (PythonQt's qt and ctk, slicer.i18n, the wait cursor, the message box and
the DICOM database) cannot run here: a mock stands in for each, with the API the panel uses
(properties as attributes, a button's clicked() slot called by ``click()``). The scene, the
nodes, the DICOM export and the settings behind the panel are the real ones; the PACS is a fake
sender (test_web_dicom.py sends to a real Orthanc through the same library call).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path

import pytest

from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.io.settings import CONFIG_ENV, Settings, load_settings, save_settings


class FakeWidget:
    """A PythonQt widget or layout: Qt properties are plain attributes; a signal calls its slot."""

    Dirs = "dirs"

    def __init__(self, *args):
        self.children, self.slots, self.history = [], {}, []
        self.text = args[0] if args and isinstance(args[0], str) else ""
        self.currentPath = ""

    def connect(self, signal, slot):
        self.slots[signal] = slot

    def click(self):
        self.slots["clicked()"]()

    def addRow(self, *items):
        self.children.extend(items)

    def addWidget(self, widget):
        self.children.append(widget)

    def addCurrentPathToHistory(self):
        self.history.append(self.currentPath)

    def setTextInteractionFlags(self, flags):
        self.flags = flags


class FakeDatabase:
    """Slicer's DICOM database over a folder of one series: instance UID -> file and tags."""

    def __init__(self, folder):
        import pydicom

        self.headers = {}
        for path in sorted(folder.iterdir()):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            self.headers[str(ds.SOPInstanceUID)] = (str(path), ds)

    def fileForInstance(self, uid):
        return self.headers.get(uid, ("", None))[0]

    def instanceValue(self, uid, tag):
        group, element = (int(x, 16) for x in tag.split(","))
        ds = self.headers[uid][1]
        return str(ds[group, element].value) if (group, element) in ds else ""


@pytest.fixture
def dicom_panel(monkeypatch, tmp_path):
    """The dicom_panel module under mocks of desktop Slicer's Qt; errorDisplay's messages recorded."""
    import slicer

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    qt = types.ModuleType("qt")
    for name in ("QFormLayout", "QPushButton", "QLineEdit", "QHBoxLayout", "QLabel"):
        setattr(qt, name, FakeWidget)
    qt.Qt = types.SimpleNamespace(TextSelectableByMouse=1)
    ctk = types.ModuleType("ctk")
    ctk.ctkCollapsibleButton = ctk.ctkPathLineEdit = FakeWidget
    for name, stub in (("slicer.i18n", i18n), ("qt", qt), ("ctk", ctk)):
        monkeypatch.setitem(sys.modules, name, stub)
    fresh = ("LungTumorReconModule.dicom_panel", "LungTumorReconModule.dependencies")
    for name in fresh:  # not a copy imported under another test's stubs
        monkeypatch.delitem(sys.modules, name, raising=False)
    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config" / "settings.json"))  # not the user's settings
    module = importlib.import_module("LungTumorReconModule.dicom_panel")
    monkeypatch.setattr(module, "ensurePythonDependencies", lambda *args, **kwargs: None)
    module.errors = errors
    yield module
    for name in fresh:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def lidc(data):
    case = data / "lidc_idri_0001"
    ct = read_ct(case / "dicom")
    return ct, read_label_on_grid(case / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", ct.geometry, threshold=1.5)


@pytest.fixture
def scene():
    from LungTumorReconLib.mrml.scene import Scene

    scene = Scene()
    yield scene
    scene.close()


def _panel(module, scene, volume, segmentation=None):
    p = types.SimpleNamespace(inputVolume=volume, outputSegmentation=segmentation, seeds=None)
    panel = module.DicomPanel(FakeWidget(), lambda: p, "requirements.txt")
    panel.scene = scene
    return panel


def _browser_volume(scene, ct, tumour):
    """The CT as Slicer's DICOM browser loads it: instance UIDs on the node, no LungTumorRecon attributes."""
    volume = scene.add_volume(ct.array, ct.geometry, name="1: CT")
    database = FakeDatabase(Path(ct.path))
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(database.headers))
    segmentation = scene.set_segmentation({"tumor": tumour}, ct.geometry, reference_volume=volume)
    return volume, segmentation, database


def test_the_files_of_a_volume_from_the_dicom_browser(dicom_panel, scene, lidc):
    from LungTumorReconLib.errors import InputError
    from LungTumorReconLib.mrml.scene import Scene

    ct, tumour = lidc
    volume, _, database = _browser_volume(scene, ct, tumour)
    assert Scene.volume_ct(volume).series_uid is None  # as loaded: the library cannot tell its series
    files = dicom_panel.dicomSourceFiles(volume, database)
    assert sorted(files) == sorted(f for f, _ in database.headers.values()) and len(files) == 16
    assert Scene.volume_ct(volume).series_uid == ct.series_uid
    assert dicom_panel.dicomSourceFiles(scene.add_volume(ct.array, ct.geometry), database) is None  # not the browser's
    del database.headers[next(iter(database.headers))]  # a file gone from the database
    with pytest.raises(InputError, match="1 of the CT's 16 DICOM files are no longer in Slicer's DICOM database"):
        dicom_panel.dicomSourceFiles(volume, database)


def test_export_dicom_writes_the_seg_and_sr(dicom_panel, scene, lidc, tmp_path, monkeypatch):
    import slicer

    ct, tumour = lidc
    volume, segmentation, database = _browser_volume(scene, ct, tumour)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    panel = _panel(dicom_panel, scene, volume, segmentation)
    panel.exportButton.click()
    assert dicom_panel.errors == ["Export DICOM: choose the export folder first"]
    panel.folderEdit.currentPath = str(tmp_path / "export")
    panel.exportButton.click()
    assert len(dicom_panel.errors) == 1, dicom_panel.errors
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["measurements.dcm", "segmentation.dcm"]
    assert panel.statusLabel.text == f"Exported segmentation.dcm, measurements.dcm to {tmp_path / 'export'}"
    assert panel.folderEdit.history == [str(tmp_path / "export")]


def test_an_nrrd_ct_is_one_message_and_nothing_is_written(dicom_panel, scene, small_case, tmp_path):
    ct_path, _, _, tumour, _ = small_case
    ct = read_ct(ct_path)
    volume = scene.add_volume(ct.array, ct.geometry, name="ct")
    panel = _panel(dicom_panel, scene, volume, scene.set_segmentation({"tumor": tumour}, ct.geometry))
    panel.folderEdit.currentPath = str(tmp_path / "export")
    panel.exportButton.click()
    assert len(dicom_panel.errors) == 1 and "\n" not in dicom_panel.errors[0]
    assert dicom_panel.errors[0].startswith("Export DICOM: this CT was not loaded from DICOM")
    assert not (tmp_path / "export").exists() and panel.statusLabel.text == ""


def test_send_to_pacs_exports_then_sends(dicom_panel, scene, lidc, tmp_path, monkeypatch):
    import slicer

    from LungTumorReconLib.dicom import pacs

    sent = []

    def send_files(files, to, timeout_s):
        sent.append(([f.name for f in files], str(to)))
        return pacs.SendReport(to, len(files), ["measurements.dcm: stored with warning status 0xB000"])

    monkeypatch.setattr(pacs, "send_files", send_files)
    ct, tumour = lidc
    volume, segmentation, database = _browser_volume(scene, ct, tumour)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    panel = _panel(dicom_panel, scene, volume, segmentation)
    panel.folderEdit.currentPath = str(tmp_path / "export")
    panel.destinationEdit.text = "pacs.example.org"
    panel.sendButton.click()
    assert dicom_panel.errors == ["Send to PACS: 'pacs.example.org' is not a PACS address (give AET@HOST:PORT "
                                  "or an http(s)://.../dicom-web URL)"]
    assert sent == [] and not (tmp_path / "export").exists()  # refused before anything is written
    panel.destinationEdit.text = "PACS@127.0.0.1:11112"
    panel.sendButton.click()
    assert len(dicom_panel.errors) == 1 and sent == [(["segmentation.dcm", "measurements.dcm"], "PACS@127.0.0.1:11112")]
    assert panel.statusLabel.text == ("Sent 2 files to PACS@127.0.0.1:11112\n"
                                      "measurements.dcm: stored with warning status 0xB000")


def test_save_keeps_the_pacs_and_folder_for_every_front_end(dicom_panel, scene, tmp_path):
    save_settings(Settings(pacs_destination="OLD@host:104", export_folder="/old"))
    panel = _panel(dicom_panel, scene, None)
    assert (panel.destinationEdit.text, panel.folderEdit.currentPath) == ("OLD@host:104", "/old")
    panel.destinationEdit.text = "no address"
    panel.saveButton.click()
    assert len(dicom_panel.errors) == 1 and "is not a PACS address" in dicom_panel.errors[0]
    assert load_settings() == Settings("OLD@host:104", "/old")
    panel.destinationEdit.text, panel.folderEdit.currentPath = " https://pacs.example.org/dicom-web ", str(tmp_path)
    panel.saveButton.click()
    assert len(dicom_panel.errors) == 1 and panel.statusLabel.text.startswith("Saved in ")
    assert load_settings() == Settings("https://pacs.example.org/dicom-web", str(tmp_path))
