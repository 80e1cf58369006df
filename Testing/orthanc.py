"""A local Orthanc PACS for the tests: DIMSE (C-STORE, C-FIND, C-GET) and DICOMweb on loopback.

:func:`running_orthanc` starts ``Orthanc conf.json`` with a configuration of its own (storage in
a temporary folder, free ports, any calling AE allowed), waits for its REST API and stops it at
the end. The ``orthanc`` fixture of conftest.py wraps it; tests skip where Orthanc is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT_S = 20.0


@dataclass
class OrthancServer:
    """A running Orthanc: its addresses as the CLI takes them, and its REST API."""

    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"

    @property
    def dimse(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def rest(self, path: str, method: str = "GET", data: bytes | None = None):
        """The JSON answer of Orthanc's REST API at ``path`` (e.g. ``/instances``)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def clear(self) -> None:
        """Remove every patient (and so every study, series and instance)."""
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", method="DELETE")


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, http_port: int, dicom_port: int, check_called_aet: bool = False) -> Path:
    """An Orthanc configuration that keeps everything in ``folder`` and listens on loopback only."""
    config = {
        "Name": "LungTumorRecon test PACS",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": check_called_aet,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    path = folder / "conf.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


@contextmanager
def running_orthanc(folder: Path, check_called_aet: bool = False) -> Iterator[OrthancServer]:
    """Start Orthanc with its storage in ``folder``; skips the test when Orthanc is not installed."""
    exe = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    if exe is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
    if not DICOMWEB_PLUGIN.is_file():
        pytest.skip(f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN})")
    server = OrthancServer(http_port=free_port(), dicom_port=free_port())
    config = write_config(folder, server.http_port, server.dicom_port, check_called_aet)
    log = open(folder / "orthanc.log", "wb")
    proc = subprocess.Popen([exe, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {proc.returncode}; see {folder / 'orthanc.log'}")
            try:
                server.rest("/system")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S:.0f} s") from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
