"""The Slicer panel's fine-tuning section: save the current CT and its corrected tumour as a case,
and adapt a deep tumour model to a folder of such cases in a child process (the library's
FinetuneJob), with progress and Cancel. Built in code below the panel's .ui. Not for clinical use."""

from __future__ import annotations

import traceback

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from LungTumorReconLib.errors import LungTumorReconError
from LungTumorReconLib.finetune import FINETUNABLE_METHODS
from LungTumorReconLib.pipeline.methods import method_label
from LungTumorReconModule.dependencies import ensurePythonDependencies, pythonSlicerExecutable
from LungTumorReconModule.job_section import JobSection

_LABELS = {"model": _("Model"), "steps": _("Steps"), "max_minutes": _("Minutes"), "validation": _("Validation")}


def _folderEdit(settingKey: str):
    edit = ctk.ctkPathLineEdit()
    edit.filters = ctk.ctkPathLineEdit.Dirs
    edit.settingKey = settingKey  # remembered between sessions
    return edit


class FinetunePanel(JobSection):
    """The section's widgets and their actions.

    ``parameterNode()`` gives the module's parameter node (its CT and segmentation);
    ``requirementsPath`` is the module's requirements.txt (installed on first use)."""

    title = _("Fine-tuning")

    def __init__(self, layout, parameterNode, requirementsPath: str) -> None:
        self.parameterNode, self.requirementsPath = parameterNode, requirementsPath
        section = ctk.ctkCollapsibleButton()
        section.text = _("Fine-tuning on corrected cases (not for clinical use)")
        section.collapsed = True
        layout.addWidget(section)
        form = qt.QFormLayout(section)
        self.casesFolder = _folderEdit("LungTumorRecon/FinetuneCases")
        self.casesFolder.toolTip = _("Folder of cases: CASE.nrrd and CASE.seg.nrrd with a 'tumor' segment")
        form.addRow(_("Cases folder:"), self.casesFolder)
        self.saveButton = qt.QPushButton(_("Save this case for fine-tuning"))
        self.saveButton.toolTip = _("Write the CT and its tumour segment, as corrected, into the cases folder")
        form.addRow(self.saveButton)
        self.modelBox = qt.QComboBox()
        for method in FINETUNABLE_METHODS:
            self.modelBox.addItem(method_label("tumor", method), method)
        form.addRow(_("Model:"), self.modelBox)
        self.outputFolder = _folderEdit("LungTumorRecon/FinetuneOutput")
        self.outputFolder.toolTip = _("New folder for the adapted weights (model.safetensors and model.json)")
        form.addRow(_("Output folder:"), self.outputFolder)
        self.stepsBox = qt.QSpinBox()
        self.stepsBox.setRange(1, 100000)
        self.stepsBox.value = 200
        form.addRow(_("Steps:"), self.stepsBox)
        self._addJobControls(form, _("Adapt the model to the cases in the folder"))
        self.adaptButton = self.runButton
        self.saveButton.connect("clicked()", self.onSaveCase)
        self.adaptButton.connect("clicked()", self.onAdapt)

    def onSaveCase(self) -> None:
        p = self.parameterNode()
        try:
            ensurePythonDependencies(self.requirementsPath)  # the scene layer imports the pipeline
            from LungTumorReconLib.mrml.presenter import ResultPresenter
            from LungTumorReconLib.mrml.scene import Scene

            if not self.casesFolder.currentPath:
                raise LungTumorReconError("choose the cases folder first")
            presenter = ResultPresenter(Scene(slicer.mrmlScene))
            ctPath, segPath = presenter.save_case_for_finetuning(
                p.inputVolume if p else None, self.casesFolder.currentPath, p.outputSegmentation if p else None)
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("Save this case: {error}").format(error=exc))
            return
        self.casesFolder.addCurrentPathToHistory()
        self.statusLabel.text = _("Saved {ct} and {seg}").format(ct=ctPath, seg=segPath)

    def onAdapt(self) -> None:
        if self.job is not None:
            return
        try:
            ensurePythonDependencies(self.requirementsPath, deep=True)  # may ask the user
            from LungTumorReconLib.finetune.job import FinetuneJob, FinetuneRequest

            if not self.casesFolder.currentPath or not self.outputFolder.currentPath:
                raise LungTumorReconError("choose the cases folder and the output folder first")
            request = FinetuneRequest(model=self.modelBox.currentData, cases_dir=self.casesFolder.currentPath,
                                      out_dir=self.outputFolder.currentPath, steps=int(self.stepsBox.value),
                                      device="auto")
            job = FinetuneJob(request, python=pythonSlicerExecutable()).start()
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("Fine-tuning: {error}").format(error=exc.describe(_LABELS)))
            return
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            slicer.util.errorDisplay(_("Fine-tuning failed to start: {error}").format(error=exc),
                                     detailedText=traceback.format_exc())
            return
        self.outputFolder.addCurrentPathToHistory()
        self._startJob(job)

    def _finished(self, outcome) -> None:
        self.statusLabel.text = outcome.message
        self.progressBar.value = 100 if outcome.weights is not None else 0
        if outcome.error is not None:
            slicer.util.errorDisplay(f"{outcome.message}: {outcome.error.describe(_LABELS)}")
