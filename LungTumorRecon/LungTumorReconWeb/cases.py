"""Opening a case from the browser: an uploaded CT (a zipped DICOM folder, NRRD, NIfTI or
MetaImage file) or one of the server's ``--data`` folder. The CLI's reader (``read_ct``) and
its one-line errors; an upload is checked for size and type before it is read, a zip is
extracted with no path leaving its folder and its size counted while it is written, and the
uploaded files are removed once the CT is in memory. Not for clinical use."""

from __future__ import annotations

import asyncio
import tempfile
import traceback
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from aiohttp import web

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.ct import CTVolume, is_image_file, read_ct

if TYPE_CHECKING:
    from LungTumorReconWeb.app import LungTumorReconWebApp

CHUNK = 1 << 20
MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries and headers around the file
EXTRACTED_FACTOR = 8  # a zip may hold this many times the upload limit (DICOM compresses well)
MAX_ZIP_MEMBERS = 50_000
NIFTI_MAGIC_AT = 344


def _looks_like(suffix: str, head: bytes) -> bool:
    """The file's first bytes agree with its name (before the rest is read)."""
    if suffix == ".zip":
        return head.startswith(b"PK\x03\x04")
    if suffix == ".nrrd":
        return head.startswith(b"NRRD")
    if suffix == ".nii.gz":
        return head.startswith(b"\x1f\x8b")
    if suffix == ".nii":
        return head[NIFTI_MAGIC_AT:NIFTI_MAGIC_AT + 4] in (b"n+1\x00", b"n+2\x00")
    if suffix == ".mha":
        return b"NDims" in head[:4096] or b"ObjectType" in head[:4096]
    return False


UPLOAD_SUFFIXES = (".zip", ".nrrd", ".nii.gz", ".nii", ".mha")


def upload_suffix(name: str) -> str:
    """The upload's kind by its name; an InputError for any other."""
    lower = name.lower()
    for suffix in UPLOAD_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    raise InputError(f"not a CT upload: give a zipped DICOM folder (.zip), or a {', '.join(UPLOAD_SUFFIXES[1:])} "
                     "file", name)


def extract_zip(archive: Path, folder: Path, max_bytes: int) -> None:
    """Extract ``archive`` into ``folder``: no member may leave it (absolute paths, '..', links),
    and the extracted bytes are counted as they are written (a zip bomb stops at ``max_bytes``)."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                raise InputError(f"the zip holds more than {MAX_ZIP_MEMBERS} files")
            written = 0
            for member in members:
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if (not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]
                        or (member.external_attr >> 16) & 0o170000 == 0o120000):
                    raise InputError(f"unsafe entry in the zip: {member.filename!r}")
                target = folder.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as source, open(target, "wb") as out:
                    while chunk := source.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise InputError(f"the zip holds more than {max_bytes / 1e6:.0f} MB")
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise InputError(f"not a readable zip file ({exc})") from None


def read_upload(path: Path, name: str, max_bytes: int) -> CTVolume:
    """The CT of an uploaded file (its errors name the upload, not the server's copy)."""
    try:
        if upload_suffix(name) != ".zip":
            return read_ct(path)
        folder = path.parent / "extracted"
        extract_zip(path, folder, EXTRACTED_FACTOR * max_bytes)
        images = [p for p in folder.rglob("*") if p.is_file() and is_image_file(p)]
        return read_ct(images[0] if len(images) == 1 else folder)
    except LungTumorReconError as exc:
        if exc.path is not None and exc.path.startswith(str(path.parent)):  # the upload's name, not the copy's
            inner = Path(exc.path).relative_to(path.parent)
            inner = inner.relative_to("extracted") if inner.parts[:1] == ("extracted",) else Path()
            exc.path = str(Path(name) / inner) if inner.parts else name
        raise


def data_cases(data_dir: Path | None) -> list[str]:
    """What the ``--data`` folder offers: its image files and folders (DICOM), by name."""
    if data_dir is None or not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or is_image_file(p)))


class CaseLogic:
    """The panel's Case section over the app (which clears the scene and shows the new CT)."""

    def __init__(self, app: LungTumorReconWebApp, data_dir: Path | None, max_upload_bytes: int,
                 temp_dir: Path | None = None) -> None:
        self.app, self.typed, self.state = app, app.typed, app.typed.data
        self.data_dir, self.max_upload_bytes = data_dir, max_upload_bytes
        self.temp_dir = temp_dir
        self.state.data_cases = data_cases(data_dir)
        self.state.data_case = self.state.data_cases[0] if self.state.data_cases else ""
        self.state.upload_limit_mb = round(max_upload_bytes / 1e6)

    def _refuse_while_busy(self) -> None:
        s, logic = self.state, self.app.logic
        if self.state.case_busy:
            raise InputError("a case is being opened; wait for it")
        if logic.session.busy or s.finetune_busy or s.followup_busy or s.dicom_busy:
            raise InputError("a job is running: wait for it to end (or cancel it) before opening another case")

    async def _open(self, read, name: str) -> bool:
        """Read a CT beside the UI (the CLI's reader), then show it; errors in the panel."""
        with self.typed.state:
            self.state.error, self.state.case_busy, self.state.case_message = "", True, f"opening {name}"
        error, size = "", ""
        try:
            ct = await asyncio.to_thread(read)
            size = " × ".join(str(v) for v in ct.array.shape[::-1])
            with self.typed.state:
                self.app.open_case(ct, name)
        except LungTumorReconError as exc:
            error = exc.describe()
        except Exception as exc:  # noqa: BLE001 - shown in the panel; the server stays up
            traceback.print_exc()
            error = f"{name}: {type(exc).__name__}: {exc}"
        with self.typed.state:
            self.state.case_busy = False
            self.state.case_message = "" if error else f"opened {name} ({size} voxels)"
            self.state.error = error
        return not error

    def open_data_case(self) -> None:
        """The chosen case of the --data folder (only a name it lists: no path from the browser)."""
        from trame_server.utils.asynchronous import create_task

        name = str(self.state.data_case)
        self.state.data_cases = data_cases(self.data_dir)
        try:
            self._refuse_while_busy()
            if name not in self.state.data_cases:
                raise InputError("choose a case of the server's data folder")
        except InputError as exc:
            self.state.error = exc.describe()
            return
        create_task(self._open(lambda: read_ct(self.data_dir / name), name))

    async def handle_upload(self, request: web.Request) -> web.Response:
        """POST /upload (a form with one file field): size and type first, then the CT."""
        name = "upload"
        try:
            self._refuse_while_busy()
            limit = self.max_upload_bytes
            if request.content_length is None or request.content_length > limit + MULTIPART_OVERHEAD:
                raise InputError(f"the upload is larger than this server's limit of {limit / 1e6:.0f} MB")
            reader = await request.multipart()
            part = await reader.next()
            if part is None or not getattr(part, "filename", None):
                raise InputError("no file in the upload")
            name = Path(part.filename.replace("\\", "/")).name
            suffix = upload_suffix(name)
            with tempfile.TemporaryDirectory(prefix="upload-", dir=self.temp_dir) as folder:
                path = Path(folder) / f"upload{suffix}"
                await self._receive(part, path, suffix, name, limit)
                ok = await self._open(lambda: read_upload(path, name, limit), name)
        except LungTumorReconError as exc:
            with self.typed.state:
                self.state.error = exc.describe()
            return web.Response(status=400, text=f"error: {exc.describe()}\n")
        return web.Response(status=200 if ok else 400, text=f"{'opened' if ok else 'not opened'}: {name}\n")

    @staticmethod
    async def _receive(part, path: Path, suffix: str, name: str, limit: int) -> None:
        """Write the file, its first bytes checked against its type, its size counted."""
        head = b""
        with open(path, "wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                if len(head) < 4096:
                    head += chunk[:4096]
                    if len(head) >= min(4096, NIFTI_MAGIC_AT + 4) and not _looks_like(suffix, head):
                        raise InputError(f"not a {suffix} file (its first bytes say otherwise)", name)
                out.write(chunk)
                if out.tell() > limit:
                    raise InputError(f"the upload is larger than this server's limit of {limit / 1e6:.0f} MB", name)
        if not _looks_like(suffix, head):
            raise InputError(f"not a {suffix} file (its first bytes say otherwise)", name)

