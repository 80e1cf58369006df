"""What the web panel's DICOM section does: export the segments as they are now (corrections
included) as a DICOM SEG and SR (the library's ResultPresenter.export_dicom), and send those
files to a PACS (the library's send_files), whose address is kept in the user's settings for
every front end. Not for clinical use."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from trame_server.utils.asynchronous import create_task

from LungTumorReconLib.dicom.pacs import PacsAddress, SendReport, parse_address, send_files
from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.settings import load_settings, save_settings
from LungTumorReconWeb.state import DICOM_LABELS

if TYPE_CHECKING:
    from LungTumorReconWeb.logic import PanelLogic

SEND_TIMEOUT_S = 30.0


class DicomLogic:
    """The section's behaviour over the panel's scene; ``sender`` stores files in a PACS (a test's fake)."""

    def __init__(self, panel: PanelLogic, sender: Callable[..., SendReport] | None = None) -> None:
        self.panel, self.typed, self.state = panel, panel.typed, panel.state
        self.sender = sender or send_files
        settings = load_settings()
        self.state.dicom_folder = self.state.dicom_folder or settings.export_folder or str(panel.out_dir / "dicom")
        self.state.pacs_destination = self.state.pacs_destination or settings.pacs_destination

    def _export(self) -> list[Path]:
        folder = str(self.state.dicom_folder).strip()
        if not folder:
            raise InputError("give the DICOM export folder")
        self.panel.views.end_editing()  # a pending brush stroke belongs to the export
        return self.panel.presenter.export_dicom(self.panel.volume_node, Path(folder).expanduser(),
                                                 self.panel.segmentation_node, self.panel.seeds_node)

    def export(self) -> None:
        """``segmentation.dcm`` and ``measurements.dcm`` of the segments as they are now."""
        if self.state.dicom_busy:  # not while those files are being sent
            return
        self.state.error = ""
        try:
            files = self._export()
        except LungTumorReconError as exc:
            self.state.error = exc.describe(DICOM_LABELS)
            return
        self.state.dicom_message = f"exported {', '.join(f.name for f in files)} to {files[0].parent}"

    def save_destination(self) -> None:
        """The PACS destination as the default of every front end (refused when not an address)."""
        self.state.error = ""
        try:
            settings = load_settings()
            settings.pacs_destination = str(self.state.pacs_destination).strip()
            path = save_settings(settings)
        except LungTumorReconError as exc:
            self.state.error = exc.describe(DICOM_LABELS)
            return
        self.state.dicom_message = f"saved the PACS destination in {path}"

    def send(self) -> None:
        """Export, then send the two files to the PACS; the transfer runs beside the UI."""
        s = self.state
        if s.dicom_busy:
            return
        s.error = ""
        try:
            if not str(s.pacs_destination).strip():
                raise InputError("give the PACS destination (AET@HOST:PORT or a DICOMweb URL)")
            address = parse_address(s.pacs_destination)  # refused before anything is written
            files = self._export()
        except LungTumorReconError as exc:
            s.error = exc.describe(DICOM_LABELS)
            return
        s.dicom_busy, s.dicom_message = True, f"sending {len(files)} files to {address}"
        create_task(self._send(files, address))

    async def _send(self, files: list[Path], address: PacsAddress) -> None:
        message, error = "", ""
        try:
            report = await asyncio.to_thread(self.sender, files, address, timeout_s=SEND_TIMEOUT_S)
            message = f"sent {report.files} files to {address}" + "".join(f"; {w}" for w in report.warnings)
        except LungTumorReconError as exc:
            message, error = f"not sent to {address}", exc.describe(DICOM_LABELS)
        except Exception as exc:  # noqa: BLE001 - shown in the panel, which stays usable
            traceback.print_exc()
            message, error = f"not sent to {address}", f"{type(exc).__name__}: {exc}"
        with self.typed.state:
            self.state.dicom_busy, self.state.dicom_message = False, message
            if error:
                self.state.error = error
