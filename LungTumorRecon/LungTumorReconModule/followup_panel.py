"""The Slicer panel's follow-up section: compare a follow-up CT with its baseline (the library's
FollowupJob in a child process, with progress and Cancel), then show both side by side with
their segmentations and the growth table. Built in code below the panel's .ui. Growth, doubling
time, Lung-RADS and RECIST are research results, not for clinical use."""

from __future__ import annotations

import tempfile
import traceback

import ctk
import qt
import slicer
from slicer.i18n import tr as _

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconModule.dependencies import ensurePythonDependencies, pythonSlicerExecutable
from LungTumorReconModule.dicom_panel import dicomSourceFiles
from LungTumorReconModule.job_section import JobSection
from LungTumorReconModule.methods_ui import method_id

_LABELS = {"baseline": _("Baseline CT"), "followup": _("Follow-up CT"), "seeds_path": _("Seeds"),
           "dates": _("Dates"), "lungs": _("Lung method"), "tumor": _("Tumour: Method"), "device": _("Tumour: Device")}
VIEWS = ("Red", "Yellow")  # the side-by-side layout's slice views: baseline, follow-up


def _volumeSelector(toolTip: str):
    selector = slicer.qMRMLNodeComboBox()
    selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
    selector.selectNodeUponCreation = False
    selector.addEnabled = selector.removeEnabled = False
    selector.noneEnabled = True
    selector.showHidden = False
    selector.toolTip = toolTip
    selector.setMRMLScene(slicer.mrmlScene)
    return selector


def showSideBySide(nodes, mrmlScene=None) -> None:
    """The baseline in the Red view and the follow-up in the Yellow view (Slicer's side-by-side
    layout, both axial), each with its own segmentation, linked, and each jumped to the first
    tumour's centre as it shows it (``nodes``: the library's FollowupNodes)."""
    from LungTumorReconLib.mrml.followup_scene import show_in_views

    scene = mrmlScene or slicer.mrmlScene
    slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
    shown = ((nodes.baseline_volume, nodes.baseline_segmentation), (nodes.followup_volume, nodes.followup_segmentation))
    for index, (tag, (volume, segmentation)) in enumerate(zip(VIEWS, shown)):
        sliceNode = scene.GetSingletonNode(tag, "vtkMRMLSliceNode")
        composite = scene.GetSingletonNode(tag, "vtkMRMLSliceCompositeNode")
        if sliceNode is None or composite is None:
            raise InputError(f"there is no {tag} slice view: the side-by-side layout did not load")
        sliceNode.SetOrientationToAxial()
        composite.SetBackgroundVolumeID(volume.GetID())
        composite.SetForegroundVolumeID(None)
        # linked views move together (Slicer copies one's position to the other): with the
        # follow-up aligned on the baseline they show the same anatomy
        composite.SetLinkedControl(True)
        show_in_views(segmentation, [sliceNode.GetID()])
        if nodes.centres_ras:  # programmatic jumps are not broadcast to the linked view
            sliceNode.JumpSliceByCentering(*nodes.centres_ras[0][index])


class FollowupPanel(JobSection):
    """The section's widgets and their actions.

    ``parameterNode()`` gives the module's parameter node (its seeds are the baseline seeds,
    its tumour method and device are used); ``requirementsPath`` is the module's requirements.txt
    (installed on first use). ``scene`` (the library's Scene over ``slicer.mrmlScene`` unless
    set) and ``jobFactory`` (FollowupJob unless set) are a test's to replace."""

    title = _("Follow-up")

    def __init__(self, layout, parameterNode, requirementsPath: str) -> None:
        self.parameterNode, self.requirementsPath = parameterNode, requirementsPath
        self.scene = self.jobFactory = None
        self._inputs = None
        self._volumes = (None, None)  # the nodes the running job was started on
        section = ctk.ctkCollapsibleButton()
        section.text = _("Follow-up (not for clinical use)")
        section.collapsed = True
        layout.addWidget(section)
        form = qt.QFormLayout(section)
        self.baselineSelector = _volumeSelector(_("The earlier CT; the module's tumour seeds are placed on it"))
        form.addRow(_("Baseline CT:"), self.baselineSelector)
        self.followupSelector = _volumeSelector(_("The later CT of the same patient"))
        form.addRow(_("Follow-up CT:"), self.followupSelector)
        self.baselineDateEdit, self.followupDateEdit = qt.QLineEdit(), qt.QLineEdit()
        dates = qt.QHBoxLayout()
        for edit in (self.baselineDateEdit, self.followupDateEdit):
            edit.placeholderText = "YYYY-MM-DD"
            edit.toolTip = _("Optional: the CTs' dates, for the doubling time (else the DICOM study dates)")
            dates.addWidget(edit)
        form.addRow(_("Dates:"), dates)
        self.outputFolder = ctk.ctkPathLineEdit()
        self.outputFolder.filters = ctk.ctkPathLineEdit.Dirs
        self.outputFolder.settingKey = "LungTumorRecon/FollowupOutput"  # remembered between sessions
        self.outputFolder.toolTip = _("New folder for followup.json, scene.mrb, followup.png, both segmentations "
                                      "and registration.h5")
        form.addRow(_("Output folder:"), self.outputFolder)
        self._addJobControls(form, _("Compare the follow-up with the baseline"))
        self.tableLabel = qt.QLabel(_("Growth, doubling time, Lung-RADS and RECIST: not for clinical use"))
        form.addRow(self.tableLabel)
        self.growthTable = qt.QTableWidget()
        form.addRow(self.growthTable)
        self.runButton.connect("clicked()", self.onRun)
        # the scene's nodes are about to go: a result could not be shown on them
        self._closeObserver = slicer.mrmlScene.AddObserver(slicer.mrmlScene.StartCloseEvent, lambda *_: self.onCancel())

    def _presenter(self):
        from LungTumorReconLib.mrml.presenter import ResultPresenter
        from LungTumorReconLib.mrml.scene import Scene

        return ResultPresenter(self.scene or Scene(slicer.mrmlScene))

    def _dates(self) -> list[str] | None:
        dates = [self.baselineDateEdit.text.strip(), self.followupDateEdit.text.strip()]
        if not any(dates):
            return None
        if not all(dates):
            raise InputError("give both dates, or none (the DICOM study dates are then used)", option="dates")
        return dates

    def _request(self, folder: str):
        """The job's request: the two CTs and the seeds written for it into ``folder``."""
        from LungTumorReconLib.followup.job import FollowupRequest

        p = self.parameterNode()
        out = str(self.outputFolder.currentPath).strip()
        if not out:
            raise InputError("choose the output folder first")
        dates = self._dates()
        volumes = (self.baselineSelector.currentNode(), self.followupSelector.currentNode())
        # a CT from Slicer's DICOM browser goes as its series, so that the job checks its patient and date
        files = tuple(dicomSourceFiles(v) if v is not None else None for v in volumes)
        with slicer.util.WaitCursor():  # writing the CTs takes a moment
            baseline, followup, seeds = self._presenter().write_followup_inputs(
                *volumes, folder, p.seeds if p else None, dicom_files=files)
        tumor = method_id(p.tumorMethod) if p else None
        return FollowupRequest(str(baseline), str(followup), out, seeds=str(seeds) if seeds else None, dates=dates,
                               tumor=tumor if tumor != "none" else None, device=method_id(p.device) if p else "auto")

    def onRun(self) -> None:
        if self.job is not None:
            return
        p = self.parameterNode()
        try:
            from LungTumorReconLib.pipeline import methods

            deep = methods.needs_torch("tumor", "threshold", method_id(p.tumorMethod) if p else None, "none",
                                       has_lungs=True)
            ensurePythonDependencies(self.requirementsPath, deep=deep)  # may ask the user
            from LungTumorReconLib.followup.job import FollowupJob

            self._inputs = tempfile.TemporaryDirectory(prefix="ltr-followup-inputs-")
            request = self._request(self._inputs.name)
            if self.jobFactory is not None:
                job = self.jobFactory(request).start()
            else:
                job = FollowupJob(request, python=pythonSlicerExecutable()).start()
        except LungTumorReconError as exc:
            self._dropInputs()
            slicer.util.errorDisplay(_("Follow-up: {error}").format(error=exc.describe(_LABELS)))
            return
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            self._dropInputs()
            slicer.util.errorDisplay(_("Follow-up failed to start: {error}").format(error=exc),
                                     detailedText=traceback.format_exc())
            return
        self._volumes = (self.baselineSelector.currentNode(), self.followupSelector.currentNode())
        self.outputFolder.addCurrentPathToHistory()
        self._startJob(job)

    def _dropInputs(self) -> None:
        if self._inputs is not None:
            self._inputs.cleanup()
            self._inputs = None

    def _finished(self, outcome) -> None:
        self._dropInputs()
        self.statusLabel.text = outcome.message
        self.progressBar.value = 100 if outcome.out_dir is not None else 0
        if outcome.error is not None:
            slicer.util.errorDisplay(f"{outcome.message}: {outcome.error.describe(_LABELS)}")
        elif outcome.out_dir is not None:
            self._show(outcome)

    def _show(self, outcome) -> None:
        """The finished folder into the scene, on the volumes the job was started on."""
        baseline, followup = self._volumes
        nodes = self._presenter().load_followup(outcome.out_dir, baseline, followup)
        self._fillTable(nodes.rows)
        showSideBySide(nodes, self.scene.mrml if self.scene is not None else None)
        extra = [nodes.new_lesions] if nodes.new_lesions else []
        warnings = [f"warning: {w}" for w in nodes.report["warnings"]]
        self.statusLabel.text = "\n".join([outcome.message, *extra, *warnings])

    def _fillTable(self, rows: list[dict]) -> None:
        from LungTumorReconLib.mrml.followup_scene import GROWTH_COLUMNS

        self.growthTable.setColumnCount(len(GROWTH_COLUMNS))
        self.growthTable.setHorizontalHeaderLabels([title for _key, title in GROWTH_COLUMNS])
        self.growthTable.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for column, (key, _title) in enumerate(GROWTH_COLUMNS):
                self.growthTable.setItem(row, column, qt.QTableWidgetItem(values[key]))

    def cleanup(self) -> None:
        """Kill a running follow-up and remove its job folder and inputs (the module is closing)."""
        super().cleanup()
        self._dropInputs()
        slicer.mrmlScene.RemoveObserver(self._closeObserver)
