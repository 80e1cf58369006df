"""A real PACS round trip against a local Orthanc (DIMSE and DICOMweb): send, fetch, run, send back.

The CT slices of LIDC-IDRI-0001 go in by C-STORE, those of the IBSI crop by STOW-RS; the LIDC
study comes back by C-GET and by WADO-RS, voxel for voxel, and runs. Failures (closed port, not
a DICOM port, wrong called AE, silent server, unknown study) are one ``error:`` line, exit 2.
"""

from __future__ import annotations

import json
import socket
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import DATA
from orthanc import free_port, running_orthanc
from pydicom.uid import generate_uid

from LungTumorReconLib import cli
from LungTumorReconLib.dicom import pacs
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import read_ct

LIDC = DATA / "lidc_idri_0001" / "dicom"
IBSI = DATA / "ibsi_nsclc_crop" / "dicom" / "image"


def _slices(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.dcm"))
    if not files:
        pytest.skip(f"test data not found at {folder}")
    return files


def _tag(path: Path, keyword: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).get(keyword))


def _stored(orthanc, level: str, **query: str) -> list[str]:
    """Orthanc's IDs of the stored resources at ``level`` matching the DICOM ``query``."""
    body = json.dumps({"Level": level, "Query": query}).encode()
    return orthanc.rest("/tools/find", method="POST", data=body)


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert all(w in lines[0] for w in words), (words, lines[0])


@pytest.fixture(scope="module")
def lidc(orthanc) -> tuple[list[Path], str]:
    """The LIDC slices, stored in Orthanc by C-STORE; returns them and their StudyInstanceUID."""
    files = _slices(LIDC)
    report = pacs.send_files(files, pacs.parse_address(orthanc.dimse))
    assert report.files == len(files) and report.warnings == []
    return files, _tag(files[0], "StudyInstanceUID")


def test_parse_address():
    assert pacs.parse_address("ORTHANC@127.0.0.1:4242") == pacs.PacsAddress("dimse", "ORTHANC", "127.0.0.1", 4242)
    web = pacs.parse_address("http://localhost:8042/dicom-web/")
    assert web.protocol == "dicomweb" and str(web) == "http://localhost:8042/dicom-web"
    for bad in ("ORTHANC", "127.0.0.1:4242", "A@host", "A@host:0", "A@host:99999", "AVERYLONGAETITLE17@h:1",
                "ftp://host/dicom-web", "http:///dicom-web"):
        with pytest.raises(InputError):
            pacs.parse_address(bad)


def test_c_store_adds_each_slice_once(orthanc, lidc, capsys):
    files, study = lidc
    series = _tag(files[0], "SeriesInstanceUID")
    assert len(_stored(orthanc, "Instance", SeriesInstanceUID=series)) == len(files) == 16
    # resending (here by the command line) adds nothing: Orthanc keys on the SOPInstanceUID
    code, out, err = _cli(capsys, "send", LIDC, "--to", orthanc.dimse, "--aet", "TESTSCU")
    assert code == 0, err
    assert f"sent 16 DICOM files to {orthanc.dimse}" in out
    assert len(_stored(orthanc, "Instance", SeriesInstanceUID=series)) == 16
    assert len(_stored(orthanc, "Study", StudyInstanceUID=study)) == 1


def test_stow_rs_adds_each_slice_once(orthanc, capsys):
    files = _slices(IBSI)
    series = _tag(files[0], "SeriesInstanceUID")
    for _ in range(2):
        code, out, err = _cli(capsys, "send", IBSI, "--to", orthanc.dicomweb)
        assert code == 0, err
        assert f"sent {len(files)} DICOM files to {orthanc.dicomweb}" in out
        assert len(_stored(orthanc, "Instance", SeriesInstanceUID=series)) == len(files) == 60


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_fetch_gives_back_the_same_ct(orthanc, lidc, tmp_path, capsys, protocol):
    files, study = lidc
    _add_other_series(orthanc, files[0])  # a non-CT series in the study, which fetch leaves out
    out = tmp_path / "fetched"
    code, stdout, err = _cli(capsys, "fetch", study, "--from", getattr(orthanc, protocol), "--out", out)
    assert code == 0, err
    assert f"ready for: lungtumorrecon run {out}" in stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{_tag(f, 'SOPInstanceUID')}.dcm" for f in files)
    assert not [p for p in tmp_path.iterdir() if p.name != "fetched"]  # no partial folder left
    original, fetched = read_ct(LIDC), read_ct(out)
    np.testing.assert_array_equal(fetched.array, original.array)
    np.testing.assert_allclose(fetched.geometry.spacing, original.geometry.spacing)
    np.testing.assert_allclose(fetched.geometry.origin, original.geometry.origin)


def _add_other_series(orthanc, ct_slice: Path) -> None:
    """A copy of ``ct_slice`` in a new series of its study, with modality OT, stored in Orthanc."""
    ds = pydicom.dcmread(ct_slice)
    ds.Modality = "OT"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[ds.SeriesInstanceUID, "OT"])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[ds.SOPInstanceUID, "OT"])
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    orthanc.rest("/instances", method="POST", data=buffer.getvalue())


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_fetch_of_an_unknown_study_fails_and_writes_nothing(orthanc, tmp_path, capsys, protocol):
    out = tmp_path / "fetched"
    code, _, err = _cli(capsys, "fetch", "1.2.3.4.5", "--from", getattr(orthanc, protocol), "--out", out)
    assert code == 2
    _one_error_line(err, "no study 1.2.3.4.5", str(getattr(orthanc, protocol)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_unreachable_pacs_is_one_error_line(tmp_path, capsys, protocol):
    port = free_port()  # nobody listens there
    address = f"ORTHANC@127.0.0.1:{port}" if protocol == "dimse" else f"http://127.0.0.1:{port}/dicom-web"
    t0 = time.monotonic()
    code, _, err = _cli(capsys, "fetch", "1.2.3", "--from", address, "--out", tmp_path / "out", "--timeout", "2")
    assert code == 2 and time.monotonic() - t0 < 10
    _one_error_line(err, address, "cannot reach the PACS")
    assert not (tmp_path / "out").exists()
    code, _, err = _cli(capsys, "send", LIDC, "--to", address, "--timeout", "2")
    assert code == 2
    _one_error_line(err, address, "cannot reach the PACS")


def test_refused_associations(orthanc, tmp_path, capsys):
    # Orthanc's HTTP port speaks no DICOM
    not_dicom = f"ORTHANC@127.0.0.1:{orthanc.http_port}"
    code, _, err = _cli(capsys, "send", LIDC, "--to", not_dicom, "--timeout", "2")
    assert code == 2
    _one_error_line(err, not_dicom, "no DICOM association")
    # an Orthanc that checks the called AE title rejects another one
    with running_orthanc(tmp_path, check_called_aet=True) as strict:
        wrong = f"NOTORTHANC@127.0.0.1:{strict.dicom_port}"
        code, _, err = _cli(capsys, "send", LIDC, "--to", wrong, "--timeout", "5")
        assert code == 2
        _one_error_line(err, wrong, "rejected the association")
        assert strict.rest("/instances") == []


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_a_silent_server_times_out(capsys, protocol):
    with socket.socket() as silent:  # accepts connections (in its backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        address = f"ORTHANC@127.0.0.1:{port}" if protocol == "dimse" else f"http://127.0.0.1:{port}/dicom-web"
        t0 = time.monotonic()
        code, _, err = _cli(capsys, "send", LIDC, "--to", address, "--timeout", "1")
    assert code == 2 and time.monotonic() - t0 < 8
    _one_error_line(err, address, "1 s")


def test_bad_input_is_one_error_line(tmp_path, capsys):
    code, _, err = _cli(capsys, "send", tmp_path, "--to", "ORTHANC@127.0.0.1:4242")
    assert code == 2
    _one_error_line(err, "has no DICOM files")
    code, _, err = _cli(capsys, "send", LIDC, "--to", "nowhere")
    assert code == 2
    _one_error_line(err, "'nowhere' is not a PACS address")
    code, _, err = _cli(capsys, "fetch", "not-a-uid", "--from", "A@127.0.0.1:1", "--out", tmp_path / "o")
    assert code == 2
    _one_error_line(err, "not a DICOM UID")
    code, _, err = _cli(capsys, "send", LIDC, "--to", "A@127.0.0.1:1", "--timeout", "0")
    assert code == 2
    _one_error_line(err, "--timeout")
    (tmp_path / "x.dcm").write_text("not DICOM")
    code, _, err = _cli(capsys, "send", tmp_path, "--to", "A@127.0.0.1:1")
    assert code == 2
    _one_error_line(err, "x.dcm", "not a DICOM file")


def test_fetch_run_and_send_the_results_back(orthanc, lidc, tmp_path, capsys):
    """The whole round trip: fetch the CT, run on it, send the run's DICOM SEG and SR to the PACS."""
    files, study = lidc
    fetched, out = tmp_path / "ct", tmp_path / "result"
    assert _cli(capsys, "fetch", study, "--from", orthanc.dimse, "--out", fetched)[0] == 0
    code, _, err = _cli(capsys, "run", fetched, "--out", out, "--lungs", "threshold", "--tumor", "none",
                        "--recon", "mc", "--quiet")
    assert code == 0, err
    assert (out / "segmentation.seg.nrrd").is_file()
    written = sorted(out.glob("*.dcm"))
    if not written:
        pytest.skip("run wrote no DICOM SEG or SR here")
    code, stdout, err = _cli(capsys, "send", out, "--to", orthanc.dicomweb)
    assert code == 0, err
    assert f"sent {len(written)} DICOM files" in stdout
    for path in written:
        assert _tag(path, "StudyInstanceUID") == study
        assert len(_stored(orthanc, "Instance", SOPInstanceUID=_tag(path, "SOPInstanceUID"))) == 1
    # fetching again still gives the CT only
    again = tmp_path / "again"
    assert _cli(capsys, "fetch", study, "--from", orthanc.dicomweb, "--out", again)[0] == 0
    assert len(list(again.iterdir())) == len(files)
