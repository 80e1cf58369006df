"""The web panel's DICOM section on a real MRML scene and trame's real typed state: Export DICOM
from a DICOM CT (LIDC-IDRI-0001) with a tumour segment as in the scene, the one-line refusals
(an NRRD CT, nothing segmented, a bad PACS address), Send to PACS with a fake sender, and once
for real to a local Orthanc. The views are test_web_logic.py's recording stand-in."""

from __future__ import annotations

import asyncio

import pytest
from test_web_logic import RecordingViews

from LungTumorReconLib.dicom.pacs import SendReport
from LungTumorReconLib.errors import UnavailableError
from LungTumorReconLib.io.ct import read_ct, read_label_on_grid
from LungTumorReconLib.io.settings import CONFIG_ENV, Settings, load_settings, save_settings
from LungTumorReconLib.mrml.scene import Scene

pytest.importorskip("trame_server")


@pytest.fixture(scope="module")
def lidc(data):
    case = data / "lidc_idri_0001"
    ct = read_ct(case / "dicom")
    tumour = read_label_on_grid(case / "LIDC-IDRI-0001_small_nodule_votes.nii.gz", ct.geometry, threshold=1.5)
    assert ct.series_uid and tumour.any()
    return ct, tumour


@pytest.fixture
def make_panel(tmp_path, monkeypatch):
    """``make_panel(ct, tumour=None)``: the panel with ``ct`` loaded (and a tumour segment, if given)."""
    from trame.app import get_server
    from trame_server.utils.typed_state import TypedState

    from LungTumorReconWeb.logic import PanelLogic
    from LungTumorReconWeb.state import NAMESPACE, PanelState

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config" / "settings.json"))  # not the user's settings
    made = []

    def make(ct, tumour=None):
        server = get_server(f"ltr-dicom-test-{tmp_path.name}-{len(made)}", client_type="vue3")
        typed = TypedState(server.state, PanelState, namespace=NAMESPACE)
        panel = PanelLogic(typed, Scene(), RecordingViews(), out_dir=tmp_path / "out")
        made.append(panel)
        panel.load(ct, [])
        if tumour is not None:
            panel.scene.set_segmentation({"tumor": tumour}, ct.geometry, node=panel.segmentation_node)
        return panel, typed.data

    yield make
    for panel in made:
        panel.scene.close()


def _send(panel) -> None:
    async def go():
        panel.dicom.send()
        while panel.state.dicom_busy:
            await asyncio.sleep(0.01)
    asyncio.run(go())


def test_export_writes_the_seg_and_sr_of_the_segments_in_the_scene(make_panel, lidc, tmp_path):
    import pydicom

    ct, tumour = lidc
    panel, state = make_panel(ct)
    assert state.dicom_folder == str(tmp_path / "out" / "dicom")  # beside the scene bundle by default
    panel.dicom.export()
    assert "nothing to export" in state.error and not (tmp_path / "out" / "dicom").exists()
    panel.scene.set_segmentation({"tumor": tumour}, ct.geometry, node=panel.segmentation_node)
    panel.views.calls.clear()
    state.error = ""
    panel.dicom.export()
    assert state.error == "" and "end_editing" in panel.views.calls  # a pending brush stroke is exported
    folder = tmp_path / "out" / "dicom"
    assert sorted(p.name for p in folder.iterdir()) == ["measurements.dcm", "segmentation.dcm"]
    assert state.dicom_message == f"exported segmentation.dcm, measurements.dcm to {folder}"
    seg, sr = (pydicom.dcmread(folder / name) for name in ("segmentation.dcm", "measurements.dcm"))
    assert (seg.Modality, sr.Modality) == ("SEG", "SR")
    series = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    assert series == {ct.series_uid} and seg.StudyInstanceUID == sr.StudyInstanceUID


def test_an_nrrd_ct_is_one_line_and_writes_nothing(make_panel, small_case, tmp_path):
    ct_path, _, _, tumour, _ = small_case
    panel, state = make_panel(read_ct(ct_path), tumour)
    state.dicom_folder = str(tmp_path / "elsewhere")
    panel.dicom.export()
    assert state.error.startswith("this CT was not loaded from DICOM") and "\n" not in state.error
    assert not (tmp_path / "elsewhere").exists() and state.dicom_message == ""


def test_send_exports_then_sends_to_the_destination(make_panel, lidc, tmp_path):
    sent = []

    def sender(files, to, timeout_s):
        sent.append(([f.name for f in files], str(to), timeout_s))
        return SendReport(to, len(files))

    panel, state = make_panel(*lidc)
    panel.dicom.sender = sender
    state.pacs_destination = " PACS@127.0.0.1:11112 "
    _send(panel)
    assert state.error == "" and state.dicom_busy is False
    assert sent == [(["segmentation.dcm", "measurements.dcm"], "PACS@127.0.0.1:11112", 30.0)]
    assert state.dicom_message == "sent 2 files to PACS@127.0.0.1:11112"
    assert (tmp_path / "out" / "dicom" / "segmentation.dcm").is_file()

    def unreachable(files, to, timeout_s):
        raise UnavailableError("cannot reach the PACS (connection refused)", str(to))
    panel.dicom.sender = unreachable
    _send(panel)
    assert state.error == "PACS@127.0.0.1:11112: cannot reach the PACS (connection refused)"
    assert state.dicom_busy is False and state.dicom_message == "not sent to PACS@127.0.0.1:11112"


def test_a_bad_destination_is_refused_before_anything_is_written(make_panel, lidc, tmp_path):
    panel, state = make_panel(*lidc)
    panel.dicom.sender = lambda *a, **k: pytest.fail("nothing should be sent")
    for bad, expected in (("", "give the PACS destination"), ("pacs.example.org", "is not a PACS address")):
        state.pacs_destination, state.error = bad, ""
        panel.dicom.send()
        assert expected in state.error and "\n" not in state.error and state.dicom_busy is False
    assert not (tmp_path / "out" / "dicom").exists()
    config = tmp_path / "config" / "settings.json"
    panel.dicom.save_destination()
    assert "is not a PACS address" in state.error and not config.exists()
    state.pacs_destination, state.error = "http://127.0.0.1:8042/dicom-web", ""
    panel.dicom.save_destination()
    assert state.error == "" and state.dicom_message == f"saved the PACS destination in {config}"
    assert load_settings() == Settings(pacs_destination="http://127.0.0.1:8042/dicom-web")
    save_settings(Settings(load_settings().pacs_destination, export_folder=str(tmp_path / "chosen")))  # e.g. in Slicer
    again, again_state = make_panel(*lidc)  # the next session starts from the saved settings
    assert again_state.pacs_destination == "http://127.0.0.1:8042/dicom-web"
    assert again_state.dicom_folder == str(tmp_path / "chosen")


def test_send_to_a_real_pacs(make_panel, lidc, orthanc, tmp_path):
    """Orthanc stores both files (C-STORE): its instance count grows by two, and it holds the
    very instances exported."""
    import pydicom

    panel, state = make_panel(*lidc)
    before = len(orthanc.rest("/instances"))
    state.pacs_destination = orthanc.dimse
    _send(panel)
    assert state.error == "" and state.dicom_message == f"sent 2 files to {orthanc.dimse}"
    assert len(orthanc.rest("/instances")) == before + 2
    for name in ("segmentation.dcm", "measurements.dcm"):
        uid = str(pydicom.dcmread(tmp_path / "out" / "dicom" / name, stop_before_pixels=True).SOPInstanceUID)
        found = orthanc.rest("/tools/lookup", method="POST", data=uid.encode())
        assert [f["Type"] for f in found] == ["Instance"], (name, found)
