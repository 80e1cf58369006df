"""The web app's front server (issue 25): a token on every page and websocket, a process and a
scene per browser session, a 'server full' page past the limit, idle sessions ended with their
files, and cases opened from the browser (an upload, or the server's --data folder), driven in
a real headless Chromium. Four sessions running at once are measured in make bench
(benchmarks/bench_web_sessions.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import psutil
import pytest
from test_web_app import SAMPLE, Page, _free_port, new_driver

from LungTumorReconWeb.cases import extract_zip, read_upload, upload_suffix
from LungTumorReconLib.errors import InputError

TOKEN = "test-token-25"


class Front:
    """``lungtumorrecon app`` (the front server) in a subprocess."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port, self.tmp = _free_port(), tmp_path
        self.log = open(tmp_path / "front.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "LungTumorReconLib.cli", "app", "--port", str(self.port),
                                      "--out", str(tmp_path / "out"), *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=tmp_path)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 60
        while "open http" not in (tmp_path / "front.log").read_text():
            assert self.proc.poll() is None and time.time() < deadline, (tmp_path / "front.log").read_text()
            time.sleep(0.2)
        time.sleep(0.3)  # printed just before it listens

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str, dict]:
        request = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read().decode(errors="replace"), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)

    def children(self) -> list[str]:
        ps = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
        return [line for line in ps.splitlines() if "--session-child" in line and str(self.proc.pid) in line.split()[1]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def browsers():
    """Separate headless Chromiums (each its own cookies: its own browser session)."""
    made = []

    def make():
        made.append(new_driver())
        return made[-1]
    yield make
    for driver in made:
        driver.quit()


def _dicom_zip(folder: Path) -> tuple[Path, tuple[int, int, int]]:
    """A small synthetic chest as a zipped DICOM series (in a subfolder, as a PACS export is)."""
    from LungTumorReconDev.dicom_series import write_ct_series
    from LungTumorReconDev.synthetic_thorax import make_thorax

    thorax = make_thorax(size=(64, 64, 20), spacing=(4.0, 4.0, 5.0), tumors=("solid",), seed=3)
    files = write_ct_series(thorax.ct, thorax.geometry, folder / "series" / "CT")
    archive = folder / "ct.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.relative_to(folder / "series"))
    return archive, thorax.ct.shape


def _upload(page: Page, path: Path) -> None:
    page.el("ltr-upload").send_keys(str(path))


def test_token_sessions_and_cases_from_the_browser(tmp_path, browsers):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLE / "lung1_image.nrrd", data / "case-b.nrrd")
    front = Front(tmp_path, "--token", TOKEN, "--max-sessions", "2", "--data", str(data), "--max-upload-mb", "5")
    try:
        # without the token every page and the websocket are refused, from loopback too; nothing starts
        for path in ("/", "/index.html", "/ws", "/upload"):
            assert front.get(path)[0] == 401, path
        assert front.get("/ws", {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})[0] == 401
        assert front.get("/?token=wrong-token")[0] == 401 and front.children() == []

        # a browser with the token: its page over the cookie, and the sample's case
        a = Page(browsers(), f"{front.url}?token={TOKEN}", tmp_path / "a")
        assert a.state("case_name") == "lung1_image.nrrd"
        # the panel: the device first, the library's labels and each method's hint
        assert a.el("ltr-device").location["y"] < a.el("ltr-case-name").location["y"] < a.el("ltr-lungs-method").location["y"]
        tumor_box = a.el("ltr-tumor-method").find_element(a.By.XPATH, "./ancestor::div[contains(@class, 'v-input')]")
        assert "Gustafson–Kessel fuzzy clustering — recommended" in tumor_box.text
        assert "From a click on the tumour" in tumor_box.text  # the hint under the box
        assert a.text("ltr-place-tumor").lower() == "place tumour seed"

        # a malformed upload: one error line in the panel; the case and the server stay
        bad = tmp_path / "broken.nrrd"
        bad.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10\n\n" + bytes(300))
        _upload(a, bad)
        error = a.wait_for(lambda: a.state("error"), 30, "the upload's error")
        assert error.startswith("broken.nrrd: ") and "\n" not in error, error
        assert a.state("case_name") == "lung1_image.nrrd" and "broken.nrrd" in a.text("ltr-error")
        # a type refused by its first bytes, a size refused before it is read
        fake = tmp_path / "fake.nii.gz"
        fake.write_bytes(b"not gzip" * 100)
        _upload(a, fake)
        a.wait_for(lambda: "fake.nii.gz: not a .nii.gz file" in (a.state("error") or ""), 30, "the type's refusal")
        big = tmp_path / "big.nrrd"
        big.write_bytes(b"NRRD0004\n" + bytes(6_000_000))
        _upload(a, big)
        a.wait_for(lambda: "larger than this server's limit of 5 MB" in (a.state("error") or ""), 30, "the size")

        # a zipped DICOM folder: the new case, with nothing of the last one
        archive, shape = _dicom_zip(tmp_path)
        _upload(a, archive)
        a.wait_for(lambda: a.state("case_name") == "ct.zip" and not a.state("case_busy"), 60, "the uploaded case")
        assert a.state("error") == "", a.state("error")
        assert f"{shape[2]} × {shape[1]} × {shape[0]}" in a.text("ltr-case-message")
        assert not list(front.tmp.glob("**/upload-*"))  # the upload's files are gone

        # a second browser: its own session and scene, still the sample; it opens a --data case
        b = Page(browsers(), f"{front.url}?token={TOKEN}", tmp_path / "b")
        assert b.state("case_name") == "lung1_image.nrrd" and a.state("case_name") == "ct.zip"
        assert len(front.children()) == 2
        assert b.state("data_cases") == ["case-b.nrrd"]
        b.click("ltr-open-case")
        b.wait_for(lambda: b.state("case_name") == "case-b.nrrd" and not b.state("case_busy"), 60, "the data case")
        assert a.state("case_name") == "ct.zip"
        # a third: the server is full, and says so
        c = browsers()
        c.get(f"{front.url}?token={TOKEN}")
        assert "server full" in c.find_element(a.By.ID, "ltr-server-full").text
    finally:
        front.stop()
    assert front.children() == []


def test_idle_sessions_end_with_their_files(tmp_path):
    """A session no browser uses ends after the idle time: its process stops, its folder goes."""
    front = Front(tmp_path, "--idle-minutes", "0.05")  # 3 s; loopback: no token needed
    try:
        status, page, headers = front.get("/")
        assert status == 200 and "trame" in page
        cookie = re.search(r"ltr_session=([^;]+)", headers["Set-Cookie"]).group(1)
        [child] = front.children()
        environ = Path(f"/proc/{child.split()[0]}/environ").read_bytes().split(b"\0")
        folder = Path(next(v for v in environ if v.startswith(b"LTR_SESSION_DIR=")).split(b"=", 1)[1].decode())
        assert (folder / "app.log").is_file()
        deadline = time.time() + 30
        while (front.children() or folder.exists()) and time.time() < deadline:
            time.sleep(0.5)
        assert front.children() == [] and not folder.exists()
        # that browser's next request is told its session ended
        assert front.get("/ws", {"Cookie": f"ltr_session={cookie}"})[0] == 410
    finally:
        front.stop()


def test_a_killed_front_server_leaves_no_session_or_folder(tmp_path):
    """SIGKILL gives the front server no time to clean up: each session's process notices it is
    gone, removes its folder (and the front server's, once empty) and ends."""
    front = Front(tmp_path)
    try:
        assert front.get("/")[0] == 200
        [child] = front.children()
        pid = int(child.split()[0])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        folder = Path(next(v for v in environ if v.startswith(b"LTR_SESSION_DIR=")).split(b"=", 1)[1].decode())
        assert (folder / "app.log").is_file() and folder.parent.name.startswith("lungtumorrecon-sessions-")
        front.proc.kill()
        front.proc.wait(10)

        def running() -> bool:
            try:
                return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        deadline = time.time() + 30
        while (running() or folder.parent.exists()) and time.time() < deadline:
            time.sleep(0.5)
        assert not running() and not folder.exists() and not folder.parent.exists()
    finally:
        front.stop()


def test_zip_extraction_keeps_inside_its_folder_and_size(tmp_path):
    out = tmp_path / "out"
    for name in ("../evil.dcm", "/abs.dcm", "a/../../evil.dcm"):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(name, b"x")
        with pytest.raises(InputError, match="unsafe entry"):
            extract_zip(archive, out, 10**6)
    assert not (tmp_path / "evil.dcm").exists() and not Path("/abs.dcm").exists()
    link = zipfile.ZipInfo("link")
    link.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(link, "/etc/passwd")
    with pytest.raises(InputError, match="unsafe entry"):
        extract_zip(archive, out, 10**6)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:  # 50 MB of zeros in a small zip
        z.writestr("bomb.dcm", bytes(50_000_000))
    assert archive.stat().st_size < 200_000
    with pytest.raises(InputError, match="more than 1 MB"):
        extract_zip(archive, tmp_path / "bomb", 10**6)
    assert (tmp_path / "bomb" / "bomb.dcm").stat().st_size <= 2 * 10**6  # stopped while writing
    archive.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError, match="not a readable zip"):
        read_upload(archive, "x.zip", 10**6)
    with pytest.raises(InputError, match="not a CT upload"):
        upload_suffix("notes.txt")


def test_off_loopback_a_token_is_made_and_required(tmp_path):
    front = Front(tmp_path, "--host", "0.0.0.0")
    try:
        printed = (tmp_path / "front.log").read_text()
        token = re.search(r"/\?token=([A-Za-z0-9_-]{16,}) ", printed).group(1)
        assert front.get("/")[0] == 401 and front.get("/ws")[0] == 401  # from 127.0.0.1 too
        assert front.children() == []
        assert front.get(f"/?token={token}x")[0] == 401
    finally:
        front.stop()
