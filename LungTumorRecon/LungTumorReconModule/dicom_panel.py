"""The Slicer panel's DICOM section: export the segments as they are now (corrections included)
as a DICOM SEG and SR of the CT's study, and send them to a PACS. The PACS and the export folder
are the user's settings, shared with the web app. Built in code below the panel's .ui. Not for
clinical use."""

from __future__ import annotations

import traceback
from pathlib import Path

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.settings import load_settings, save_settings
from LungTumorReconLib.mrml.roles import DICOM_SERIES_ATTRIBUTE, DICOM_SOURCE_ATTRIBUTE
from LungTumorReconModule.dependencies import ensurePythonDependencies

SEND_TIMEOUT_S = 30.0
_LABELS = {"timeout_s": _("Timeout"), "calling_aet": _("Calling AE title")}
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM browser on the volumes it loads
SERIES_INSTANCE_UID_TAG = "0020,000E"


def dicomSourceFiles(volumeNode, database=None) -> list[str] | None:
    """The DICOM files of a volume that Slicer's DICOM browser loaded (its ``DICOM.instanceUIDs``,
    found in ``database``, by default Slicer's DICOM database), after recording its series on the
    node the way the library's ``Scene.volume_ct`` reads it. None for any other volume: the library
    finds the files of a CT it read itself from the node's own attributes."""
    uids = (volumeNode.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split() if volumeNode is not None else []
    if not uids:
        return None
    database = database if database is not None else getattr(slicer, "dicomDatabase", None)
    if database is None:
        raise InputError("this CT came from Slicer's DICOM database, which is not open")
    files = [database.fileForInstance(uid) if uid != "Unknown" else "" for uid in uids]
    missing = sum(1 for f in files if not f)
    if missing:
        raise InputError(f"{missing} of the CT's {len(uids)} DICOM files are no longer in Slicer's DICOM database")
    series = database.instanceValue(uids[0], SERIES_INSTANCE_UID_TAG)
    if not series:
        raise InputError("Slicer's DICOM database gives no series UID for this CT")
    volumeNode.SetAttribute(DICOM_SERIES_ATTRIBUTE, series)
    volumeNode.SetAttribute(DICOM_SOURCE_ATTRIBUTE, str(Path(files[0]).parent))
    return files


class DicomPanel:
    """The section's widgets and their actions.

    ``parameterNode()`` gives the module's parameter node (its CT, seeds and segmentation);
    ``requirementsPath`` is the module's requirements.txt (installed on first use). ``scene`` is
    the library's Scene over ``slicer.mrmlScene`` unless set (a test's)."""

    def __init__(self, layout, parameterNode, requirementsPath: str) -> None:
        self.parameterNode, self.requirementsPath = parameterNode, requirementsPath
        self.scene = None
        settings = load_settings()
        section = ctk.ctkCollapsibleButton()
        section.text = _("DICOM export and PACS")
        section.collapsed = True
        layout.addWidget(section)
        form = qt.QFormLayout(section)
        self.folderEdit = ctk.ctkPathLineEdit()
        self.folderEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.folderEdit.currentPath = settings.export_folder
        self.folderEdit.toolTip = _("Folder for segmentation.dcm (DICOM SEG) and measurements.dcm (DICOM SR)")
        form.addRow(_("Export folder:"), self.folderEdit)
        self.exportButton = qt.QPushButton(_("Export DICOM"))
        self.exportButton.toolTip = _("The segments as they are now, corrections included, as a DICOM SEG and SR "
                                      "in the CT's study (the CT must come from DICOM)")
        form.addRow(self.exportButton)
        self.destinationEdit = qt.QLineEdit()
        self.destinationEdit.text = settings.pacs_destination
        self.destinationEdit.placeholderText = "AET@HOST:PORT or http(s)://HOST/dicom-web"
        self.saveButton = qt.QPushButton(_("Save"))
        self.saveButton.toolTip = _("Keep this PACS and export folder as the defaults, for the web app too")
        row = qt.QHBoxLayout()
        row.addWidget(self.destinationEdit)
        row.addWidget(self.saveButton)
        form.addRow(_("PACS:"), row)
        self.sendButton = qt.QPushButton(_("Send to PACS"))
        self.sendButton.toolTip = _("Export, then store the two files in the PACS")
        form.addRow(self.sendButton)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.statusLabel.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)  # the folder can be copied
        form.addRow(self.statusLabel)
        self.exportButton.connect("clicked()", lambda: self._do(_("Export DICOM"), self.onExport))
        self.saveButton.connect("clicked()", lambda: self._do(_("Save the PACS"), self.onSave))
        self.sendButton.connect("clicked()", lambda: self._do(_("Send to PACS"), self.onSend))

    def _do(self, title: str, action) -> None:
        """Run a button's action; any failure is one message and the panel stays usable."""
        try:
            self.statusLabel.text = action()
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("{title}: {error}").format(title=title, error=exc.describe(_LABELS)))
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            slicer.util.errorDisplay(_("{title} failed: {error}").format(title=title, error=exc),
                                     detailedText=traceback.format_exc())

    def _export(self) -> list[Path]:
        p = self.parameterNode()
        ensurePythonDependencies(self.requirementsPath, dicom=True)  # may ask the user
        from LungTumorReconLib.mrml.presenter import ResultPresenter
        from LungTumorReconLib.mrml.scene import Scene

        if not str(self.folderEdit.currentPath).strip():
            raise InputError("choose the export folder first")
        volume = p.inputVolume if p else None
        sourceFiles = dicomSourceFiles(volume) if volume else None
        presenter = ResultPresenter(self.scene or Scene(slicer.mrmlScene))
        with slicer.util.WaitCursor():
            files = presenter.export_dicom(volume, self.folderEdit.currentPath, p.outputSegmentation if p else None,
                                           p.seeds if p else None, sourceFiles)
        self.folderEdit.addCurrentPathToHistory()
        return files

    def onExport(self) -> str:
        files = self._export()
        return _("Exported {files} to {folder}").format(files=", ".join(f.name for f in files), folder=files[0].parent)

    def onSave(self) -> str:
        """The PACS destination and the export folder as the defaults of every front end."""
        ensurePythonDependencies(self.requirementsPath)  # the PACS address is checked by the library
        settings = load_settings()
        settings.pacs_destination = self.destinationEdit.text.strip()
        settings.export_folder = str(self.folderEdit.currentPath).strip()
        return _("Saved in {path}").format(path=save_settings(settings))

    def onSend(self) -> str:
        ensurePythonDependencies(self.requirementsPath, dicom=True)
        from LungTumorReconLib.dicom import pacs

        destination = self.destinationEdit.text.strip()
        if not destination:
            raise InputError("give the PACS destination (AET@HOST:PORT or a DICOMweb URL)")
        address = pacs.parse_address(destination)  # refused before anything is written
        files = self._export()
        with slicer.util.WaitCursor():
            report = pacs.send_files(files, address, timeout_s=SEND_TIMEOUT_S)
        return _("Sent {n} files to {address}").format(n=report.files, address=address) + "".join(
            f"\n{w}" for w in report.warnings)

