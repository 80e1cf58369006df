"""LungTumorRecon: Slicer module (Module, Widget, Logic, Test) over LungTumorReconLib.

The Logic only adapts the library's pipeline to MRML nodes; every algorithm lives in
LungTumorReconLib. Not for clinical use.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
import sys
import time
import traceback
from typing import TYPE_CHECKING, Annotated

import numpy as np
import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Only modules that need nothing beyond Slicer's own Python are imported here; the pipeline
# (scikit-image, scikit-fuzzy, ...) is imported once ensurePythonDependencies() has run.
from LungTumorReconLib import methods
from LungTumorReconLib.coordinates import lps_to_ras
from LungTumorReconLib.errors import InputError, LungTumorReconError, UnavailableError
from LungTumorReconLib.scene import HETEROGENEITY_VOLUME, Scene
from LungTumorReconLib.seeds_io import LEFT_LUNG, RIGHT_LUNG, TUMOR

if TYPE_CHECKING:  # the job module imports the pipeline, which needs the packages installed on first use
    from LungTumorReconLib.pipeline_job import PipelineJob

# Import name of each requirement in Resources/requirements.txt and of the deep methods' packages.
_IMPORT_NAMES = {"scikit-image": "skimage", "scikit-fuzzy": "skfuzzy", "scikit-learn": "sklearn"}
# What the networks need beside PyTorch (pyproject's "deep" extra; torch comes through PyTorchUtils).
_DEEP_REQUIREMENTS = ["monai>=1.4", "safetensors>=0.4"]
_POLL_MS = 250  # how often the panel polls a running job (the MONAIAuto3DSeg pattern)
_STAGES = ("all", "lungs", "tumor", "recon", "repropagate")
_TUMOR_TABLE = "Tumor measurements"  # node names Scene.add_result / replace_result give
_SAMPLE_CATEGORY = "LungTumorRecon"

#
# LungTumorRecon
#


class LungTumorRecon(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Lung Tumor Recon")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["LungTumorRecon developers"]
        self.parent.helpText = _(
            "Lung segments, a lung-tumour segment and a 3D tumour model from a chest CT. "
            "Place seeds labelled 'right lung', 'left lung' or 'tumor', choose the methods and Apply. "
            "Not for clinical use."
        )
        self.parent.acknowledgementText = _(
            "Sample data: pyradiomics lung1 (BSD-3). Methods from the papers listed in the README."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The bundled pyradiomics lung1 CT, offered in the Sample Data module."""
    import SampleData

    from LungTumorReconLib.resources import resource_path

    logic = SampleData.SampleDataLogic
    # Categories with a title exist from Slicer 5.12; before, a source's category is made on first use.
    if hasattr(logic, "registerCustomSampleDataCategory"):
        logic.registerCustomSampleDataCategory(_SAMPLE_CATEGORY, title="Lung Tumor Recon")
    logic.registerCustomSampleDataSource(
        category=_SAMPLE_CATEGORY,
        sampleName="LungTumorReconLung1",
        thumbnailFileName=str(resource_path("Icons", "LungTumorRecon.png")),
        uris=resource_path("SampleData", "lung1_image.nrrd").as_uri(),
        fileNames="lung1_image.nrrd",
        nodeNames="lung1",
    )


def _requirementName(requirement: str) -> str:
    for separator in "<>=!~;[ ":
        requirement = requirement.split(separator)[0]
    return requirement.strip()


def _slicerPackaging():
    """``slicer.packaging`` (Slicer >= 5.12, not imported by ``slicer`` itself), else None."""
    try:
        return importlib.import_module("slicer.packaging")
    except ImportError:
        return None


def _ensureRequirements(requirements: list[str]) -> None:
    """Install only the requirements Slicer's Python lacks, after the user agrees; never
    upgrade or replace Slicer's own packages. A decline raises UnavailableError."""
    if not requirements:
        return
    slicerPackaging = _slicerPackaging()
    if slicerPackaging is not None:  # checks versions, asks the user, installs the missing
        from packaging.requirements import Requirement

        try:
            # also in testing mode: the self-test needs the packages it runs
            slicerPackaging.pip_ensure([Requirement(r) for r in requirements], requester="LungTumorRecon",
                                       skip_in_testing=False)
        except RuntimeError as exc:  # the user declined
            raise UnavailableError(f"not installed: {', '.join(requirements)}") from exc
        return
    missing = [
        r for r in requirements
        if importlib.util.find_spec(_IMPORT_NAMES.get(_requirementName(r), _requirementName(r))) is None
    ]
    if not missing:
        return
    if not slicer.util.confirmOkCancelDisplay(
        _("LungTumorRecon needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
          "Install them now? (This can take a few minutes.)").format(packages="\n".join(missing)),
        windowTitle=_("Install Python packages"),
    ):
        raise UnavailableError(f"not installed: {', '.join(missing)}")
    slicer.util.pip_install(missing)


def ensureTorch() -> None:
    """PyTorch through the PyTorch extension (PyTorchUtils), which picks the build for this
    computer's GPU and asks the user first."""
    if importlib.util.find_spec("torch") is not None:
        return
    try:
        import PyTorchUtils
    except ImportError:
        raise UnavailableError(
            "this method needs PyTorch: install the 'PyTorch' extension from the Extensions Manager and restart Slicer"
        ) from None
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
        raise UnavailableError("this method needs PyTorch, which was not installed")


def needsTorch(lungs: str, tumor: str, recon: str) -> bool:
    """Whether any of these methods runs a network."""
    return lungs in methods.DEEP_LUNG_METHODS or tumor in methods.DEEP_TUMOR_METHODS or recon == "gan"


def ensurePythonDependencies(requirementsPath: str, deep: bool = False) -> None:
    """The pipeline's packages on first use; with ``deep``, PyTorch and the networks' packages too."""
    with open(requirementsPath, encoding="utf-8") as f:
        requirements = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    _ensureRequirements(requirements)
    if deep:
        ensureTorch()
        _ensureRequirements(_DEEP_REQUIREMENTS)


def pythonSlicerExecutable() -> str:
    """The interpreter a job runs with: PythonSlicer inside desktop Slicer (same packages,
    no GUI), else this one."""
    return shutil.which("PythonSlicer") or sys.executable


#
# LungTumorReconParameterNode
#


@parameterNodeWrapper
class LungTumorReconParameterNode:
    """The module's state, saved with the scene.

    inputVolume - the chest CT.
    seeds - markups points labelled 'tumor', 'right lung' or 'left lung'.
    lungMethod, tumorMethod, reconMethod, device - as the CLI's --lungs, --tumor, --recon, --device.
    correctLung - the lung that "Correct in Segment Editor" selects and re-propagation replaces.
    outputSegmentation - filled with 'right lung', 'left lung' and 'tumor' segments.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    seeds: vtkMRMLMarkupsFiducialNode
    lungMethod: Annotated[str, Choice(list(methods.LUNG_METHODS))] = methods.DEFAULT_LUNGS
    tumorMethod: Annotated[str, Choice(list(methods.TUMOR_METHODS))] = methods.DEFAULT_TUMOR
    reconMethod: Annotated[str, Choice(list(methods.RECON_METHODS))] = methods.DEFAULT_RECON
    device: Annotated[str, Choice(list(methods.DEVICES))] = "auto"
    correctLung: Annotated[str, Choice([RIGHT_LUNG, LEFT_LUNG])] = RIGHT_LUNG
    outputSegmentation: vtkMRMLSegmentationNode


#
# LungTumorReconWidget
#


class LungTumorReconWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: one section per stage, each with its own Apply, plus Run all. Every run is a
    PipelineJob in a child process, polled by a QTimer, so Slicer stays responsive and Cancel
    stops the work at once."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job: PipelineJob | None = None
        self._jobStage = ""
        self._jobNodes = (None, None)  # the volume and segmentation the running job was started on
        self._timer = None
        self._placingLabel: str | None = None  # the label the next placed seed gets
        self._observedSeeds = None
        self._candidates: list[dict] = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LungTumorRecon.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LungTumorReconLogic()
        self._timer = qt.QTimer()
        self._timer.setInterval(_POLL_MS)
        self._timer.connect("timeout()", self._onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.placeTumorSeedButton.connect("clicked()", lambda: self.onPlaceSeed(TUMOR))
        self.ui.placeRightLungSeedButton.connect("clicked()", lambda: self.onPlaceSeed(RIGHT_LUNG))
        self.ui.placeLeftLungSeedButton.connect("clicked()", lambda: self.onPlaceSeed(LEFT_LUNG))
        self.ui.applyLungsButton.connect("clicked()", lambda: self.onRunStage("lungs"))
        self.ui.editLungButton.connect("clicked()", self.onEditLung)
        self.ui.repropagateButton.connect("clicked()", self.onRepropagate)
        self.ui.applyTumorButton.connect("clicked()", lambda: self.onRunStage("tumor"))
        self.ui.placeCandidateSeedButton.connect("clicked()", self.onPlaceCandidateSeed)
        self.ui.candidatesTableWidget.connect("itemSelectionChanged()", self._checkCanApply)
        self.ui.applyReconButton.connect("clicked()", lambda: self.onRunStage("recon"))
        self.ui.applyButton.connect("clicked()", lambda: self.onRunStage("all"))
        self.ui.cancelButton.connect("clicked()", self.onCancel)
        self.ui.showHeterogeneityCheckBox.connect("toggled(bool)", self.onShowHeterogeneity)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None:
            self._timer.stop()
            self._job.cleanup()  # kills the child and removes its folder
            self._job = None
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # the job's nodes are about to go
        self._observeSeeds(None)
        self._setCandidates([])
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode: LungTumorReconParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        idle = self._job is None
        hasVolume = bool(p and p.inputVolume)
        hasSegmentation = bool(hasVolume and p.outputSegmentation)
        self.ui.applyButton.enabled = idle and hasVolume
        self.ui.applyButton.toolTip = (_("Run every stage: lungs, tumour and 3D model") if hasVolume
                                       else _("Select an input CT"))
        self.ui.applyLungsButton.enabled = idle and hasVolume
        self.ui.applyTumorButton.enabled = idle and hasVolume
        self.ui.applyReconButton.enabled = idle and hasSegmentation
        self.ui.editLungButton.enabled = hasSegmentation
        self.ui.repropagateButton.enabled = idle and hasSegmentation
        self.ui.placeCandidateSeedButton.enabled = bool(self._candidates) and self.ui.candidatesTableWidget.currentRow() >= 0
        self.ui.cancelButton.enabled = not idle

    # -- seeds ----------------------------------------------------------------------------------
    def _seedsNode(self):
        """The parameter node's seeds, created on first use."""
        p = self._parameterNode
        if not p.seeds:
            p.seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
        return p.seeds

    def _observeSeeds(self, node) -> None:
        if self._observedSeeds is node:
            return
        if self._observedSeeds is not None:
            self.removeObserver(self._observedSeeds, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                self._onPointDefined)
        self._observedSeeds = node
        if node is not None:
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointDefined)

    def onPlaceSeed(self, label: str) -> None:
        """Slicer's place mode on the seeds node; the point placed next gets ``label``."""
        node = self._seedsNode()
        self._observeSeeds(node)
        self._placingLabel = label
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(node)
        markupsLogic.StartPlaceMode(False)  # one point, then back to view mode
        self.ui.statusLabel.text = _("Click in a view to place the {label} seed").format(label=label)

    @vtk.calldata_type(vtk.VTK_INT)
    def _onPointDefined(self, caller, event, index) -> None:
        if self._placingLabel is None:
            return  # placed with the list's own buttons: the user names it
        if not isinstance(index, int) or index < 0:
            index = caller.GetNumberOfControlPoints() - 1
        caller.SetNthControlPointLabel(index, self._placingLabel)
        self.ui.statusLabel.text = _("Placed the {label} seed").format(label=self._placingLabel)
        self._placingLabel = None

    def onPlaceCandidateSeed(self) -> None:
        row = self.ui.candidatesTableWidget.currentRow()
        if not 0 <= row < len(self._candidates):
            return
        node = self._seedsNode()
        ras = self.logic.addSeed(node, self._candidates[row]["centroid_lps"], TUMOR, self._parameterNode.inputVolume)
        slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
        self.ui.statusLabel.text = _("Added a tumor seed at candidate {n}; Apply the tumour stage").format(n=row + 1)

    def _setCandidates(self, candidates: list[dict]) -> None:
        self._candidates = list(candidates)
        table = self.ui.candidatesTableWidget
        table.setRowCount(len(self._candidates))
        for row, c in enumerate(self._candidates):
            ras = lps_to_ras(c["centroid_lps"])
            cells = (str(row + 1), f"{c['volume_ml']:.2f}", f"{c['score']:.3g}", ", ".join(f"{v:.1f}" for v in ras))
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        if self._candidates:
            table.selectRow(0)
        self._checkCanApply()

    # -- running a stage -------------------------------------------------------------------------
    def onEditLung(self) -> None:
        """Segment Editor on this segmentation and CT, with the lung to correct selected."""
        p = self._parameterNode
        try:
            segmentId = self.logic.segmentIdOf(p.outputSegmentation, p.correctLung)
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("Correction: {error}").format(error=exc))
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(p.outputSegmentation)
        editor.setSourceVolumeNode(p.inputVolume)
        editor.setCurrentSegmentID(segmentId)

    def onRepropagate(self) -> None:
        p = self._parameterNode
        try:
            k = self.logic.axialSliceIndex(p.inputVolume, self.logic.redSliceNode())
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("Re-propagation: {error}").format(error=exc))
            return
        self.onRunStage("repropagate", correctionLung=p.correctLung, correctionSlice=k)

    def onRunStage(self, stage: str, correctionLung: str | None = None, correctionSlice: int | None = None) -> None:
        """Start one stage's job (the scene is only changed when it finishes)."""
        if self._job is not None:
            return
        p = self._parameterNode
        title = _stageTitle(stage)
        try:
            # the tumour stage runs the lung method only when there are no lungs yet
            findsLungs = stage in ("all", "lungs") or (stage == "tumor" and not p.outputSegmentation)
            deep = needsTorch(p.lungMethod if findsLungs else "none",
                              p.tumorMethod if stage in ("all", "tumor") else "none",
                              p.reconMethod if stage in ("all", "recon") else "none")
            ensurePythonDependencies(self.resourcePath("requirements.txt"), deep=deep)  # may ask the user
            with slicer.util.WaitCursor():  # writing the CT for the child takes a moment
                job = self.logic.startJob(
                    p.inputVolume, seedsNode=p.seeds, stage=stage, lungs=p.lungMethod, tumor=p.tumorMethod,
                    recon=p.reconMethod, device=p.device, outputSegmentation=p.outputSegmentation,
                    correctionLung=correctionLung, correctionSlice=correctionSlice,
                    python=pythonSlicerExecutable(),
                )
        except LungTumorReconError as exc:
            slicer.util.errorDisplay(_("{title}: {error}").format(title=title, error=exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            slicer.util.errorDisplay(_("{title} failed to start: {error}").format(title=title, error=exc),
                                     detailedText=traceback.format_exc())
            return
        self._job, self._jobStage = job, stage
        self._jobNodes = (p.inputVolume, p.outputSegmentation)
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = _("{title}: starting").format(title=title)
        self._checkCanApply()
        self._timer.start()

    def onCancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._onPoll()  # finish now: the child is gone

    def _onPoll(self) -> None:
        job = self._job
        if job is None:
            return
        title = _stageTitle(self._jobStage)
        status = job.poll()
        self.ui.progressBar.value = int(round(100 * status.fraction))
        self.ui.statusLabel.text = f"{title}: {status.message}"
        if job.running:
            return
        self._timer.stop()
        job.poll()
        volume, segmentation = self._jobNodes
        try:
            if job.cancelled:
                self.ui.progressBar.value = 0
                self.ui.statusLabel.text = _("{title}: cancelled; the scene is unchanged").format(title=title)
            elif job.error:
                self.ui.progressBar.value = 0
                self.ui.statusLabel.text = _("{title}: failed").format(title=title)
                slicer.util.errorDisplay(_("{title} failed: {error}").format(title=title, error=job.error))
            else:
                nodes = self.logic.applyJobResult(job, volume, segmentation)
                self._showResults(nodes)
                warnings = nodes["result"].warnings
                self.ui.progressBar.value = 100
                self.ui.statusLabel.text = _("{title}: done").format(title=title) + "".join(f"\n{w}" for w in warnings)
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            self.ui.statusLabel.text = _("{title}: failed").format(title=title)
            slicer.util.errorDisplay(_("{title} failed: {error}").format(title=title, error=exc),
                                     detailedText=traceback.format_exc())
        finally:
            job.cleanup()
            self._job, self._jobNodes = None, (None, None)
            self._checkCanApply()

    def _showResults(self, nodes: dict) -> None:
        p = self._parameterNode
        if p is not None and not p.outputSegmentation and nodes.get("segmentation") is not None:
            p.outputSegmentation = nodes["segmentation"]
        result = nodes["result"]
        if self._jobStage in ("all", "tumor"):
            self._setCandidates(result.candidates)
        # a lung stage keeps the tumour's table: show whichever table the scene now holds
        self.ui.tumorsTableView.setMRMLTableNode(nodes.get("tumors_table") or
                                                 slicer.mrmlScene.GetFirstNodeByName(_TUMOR_TABLE))
        if self.ui.showHeterogeneityCheckBox.checked:
            self.onShowHeterogeneity(True)  # the new run's map replaced the old one

    def onShowHeterogeneity(self, checked: bool) -> None:
        node = slicer.mrmlScene.GetFirstNodeByName(HETEROGENEITY_VOLUME)
        for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
            if checked and node is not None:
                composite.SetForegroundVolumeID(node.GetID())
                composite.SetForegroundOpacity(0.5)
            elif not checked:
                shown = slicer.mrmlScene.GetNodeByID(composite.GetForegroundVolumeID() or "")
                if shown is not None and shown.GetName() == HETEROGENEITY_VOLUME:
                    composite.SetForegroundVolumeID(None)
        if checked and node is None:
            self.ui.statusLabel.text = _("No tumour heterogeneity map yet: run the tumour stage")


def _stageTitle(stage: str) -> str:
    return {
        "all": _("Run all"),
        "lungs": _("Lungs"),
        "tumor": _("Tumour"),
        "recon": _("3D reconstruction"),
        "repropagate": _("Re-propagation"),
    }.get(stage, stage)


#
# LungTumorReconLogic
#


class LungTumorReconLogic(ScriptedLoadableModuleLogic):
    """A thin adapter: MRML nodes in, the library's pipeline, MRML nodes out.

    Two ways to run, sharing the same inputs and outputs:

    * :meth:`process` blocks until the pipeline has run in this process;
    * :meth:`startJob` runs one stage in a child process (what the panel does), and
      :meth:`applyJobResult` puts the finished job's result into the scene.

    A batch script in Slicer's Python console (or ``Slicer --python-script``)::

        import slicer
        from LungTumorRecon import LungTumorReconLogic, pythonSlicerExecutable
        from LungTumorReconLib.resources import resource_path

        volume = slicer.util.loadVolume(str(resource_path("SampleData", "lung1_image.nrrd")))
        seeds = slicer.util.loadMarkups(str(resource_path("SampleData", "lung1_seeds.mrk.json")))
        logic = LungTumorReconLogic()
        nodes = logic.process(volume, seedsNode=seeds, lungs="snake", tumor="gk", recon="interp-mc")
        # or out of process, as the panel does (job.poll() gives the progress, job.cancel() stops it):
        job = logic.startJob(volume, seedsNode=seeds, stage="all", python=pythonSlicerExecutable())
        job.wait()
        nodes = logic.applyJobResult(job, volume, nodes["segmentation"])
        job.cleanup()
        slicer.util.saveNode(nodes["segmentation"], "/tmp/lung1.seg.nrrd")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LungTumorReconParameterNode(super().getParameterNode())

    @staticmethod
    def _ct(inputVolume):
        from LungTumorReconLib.ct_io import CTVolume

        return CTVolume(
            array=Scene.volume_array(inputVolume),
            geometry=Scene.volume_geometry(inputVolume),
            path=inputVolume.GetName(),
        )

    def process(
        self,
        inputVolume,
        seedsNode=None,
        lungs: str = methods.DEFAULT_LUNGS,
        tumor: str = methods.DEFAULT_TUMOR,
        recon: str = methods.DEFAULT_RECON,
        device: str = "auto",
        outputSegmentation=None,
        scene: Scene | None = None,
    ) -> dict:
        """Run the pipeline on ``inputVolume`` and put its results into the scene (blocking).

        Returns the nodes by role: volume, segmentation, model, seeds, volumes_table, tumors_table,
        and ``result`` (the library's PipelineResult).
        """
        from LungTumorReconLib.pipeline import PipelineOptions, check_options, run_on_volume

        if not inputVolume:
            raise ValueError("input volume is invalid")
        start = time.time()
        logging.info("LungTumorRecon: processing started")
        scene = scene or Scene(slicer.mrmlScene)
        options = PipelineOptions(lungs=lungs, tumor=tumor, recon=recon, device=device)
        resolved_device = check_options(options)
        ct = self._ct(inputVolume)
        seeds = Scene.seeds_from_node(seedsNode, inputVolume) if seedsNode else []
        result = run_on_volume(ct, seeds, options, resolved_device, progress=logging.info)
        nodes = scene.add_result(result, volume_node=inputVolume, segmentation_node=outputSegmentation)
        nodes["result"] = result
        logging.info(f"LungTumorRecon: processing completed in {time.time() - start:.2f} s")
        return nodes

    def startJob(
        self,
        inputVolume,
        seedsNode=None,
        stage: str = "all",
        lungs: str = methods.DEFAULT_LUNGS,
        tumor: str = methods.DEFAULT_TUMOR,
        recon: str = methods.DEFAULT_RECON,
        device: str = "auto",
        outputSegmentation=None,
        correctionLung: str | None = None,
        correctionSlice: int | None = None,
        python: str | None = None,
        scene: Scene | None = None,
    ) -> PipelineJob:
        """Start one stage in a child process and return the running job; the scene is not
        changed until :meth:`applyJobResult`.

        ``stage`` is one of "all", "lungs", "tumor" (inside the segmentation's current lungs),
        "recon" (from its current tumour) or "repropagate": ``correctionLung`` as it is now on
        axial slice ``correctionSlice`` of ``outputSegmentation`` is re-propagated through the
        CT, and only that lung is replaced. ``python`` runs the child (default: this interpreter;
        in desktop Slicer pass :func:`pythonSlicerExecutable`).
        """
        from LungTumorReconLib.lung_correction import LungCorrection
        from LungTumorReconLib.pipeline import PipelineOptions
        from LungTumorReconLib.pipeline_job import PipelineJob, plan_stage

        if not inputVolume:
            raise InputError("select an input CT")
        if stage not in _STAGES:
            raise InputError(f"unknown stage {stage!r} (one of {', '.join(_STAGES)})")
        options = PipelineOptions(lungs=lungs, tumor=tumor, recon=recon, device=device)
        # Unknown or unbuilt methods are refused now; weights and devices are checked by the child,
        # which answers in one line (so Slicer's process never imports torch for a check).
        for stageName, method in (("lungs", lungs), ("tumor", tumor), ("recon", recon)):
            methods.check_available(stageName, method)
        scene = scene or Scene(slicer.mrmlScene)
        ct = self._ct(inputVolume)
        seeds = Scene.seeds_from_node(seedsNode, inputVolume) if seedsNode else []
        segments = {}
        if stage != "all" and outputSegmentation is not None:
            segments = scene.segment_masks(outputSegmentation, ct.geometry)  # the user's, edits included
        correction = None
        if stage == "repropagate":
            mask = segments.get(correctionLung)
            k = -1 if correctionSlice is None else int(correctionSlice)
            if mask is None or not 0 <= k < mask.shape[0] or not mask[k].any():
                raise InputError(f"the {correctionLung} has no contour on slice {k + 1} to re-propagate from")
            correction = LungCorrection(lung=correctionLung, k=k, mask=mask[k])
        inputs, replaced = plan_stage(stage, ct, seeds, options, segments, correction)
        job = PipelineJob(inputs, python=python)
        job.stage, job.replacedSegments = stage, replaced  # what applyJobResult replaces
        return job.start()

    def applyJobResult(self, job: PipelineJob, inputVolume, outputSegmentation=None, scene: Scene | None = None) -> dict:
        """Put a finished job's result into the scene: only the segments its stage replaces
        (a new segmentation node when ``outputSegmentation`` is None), the model, the
        heterogeneity map and the tables. Raises the job's one-line error if it failed.
        Returns the nodes by role, and ``result`` (the PipelineResult). The caller cleans the
        job up (``job.cleanup()``)."""
        result = job.result()
        scene = scene or Scene(slicer.mrmlScene)
        nodes = scene.replace_result(result, inputVolume, outputSegmentation,
                                     segments=getattr(job, "replacedSegments", None))
        nodes["result"] = result
        return nodes

    @staticmethod
    def axialSliceIndex(inputVolume, sliceNode) -> int:
        """The CT's axial slice (array index k) that an axial slice view shows now."""
        if not inputVolume:
            raise InputError("select an input CT")
        normal = [sliceNode.GetSliceToRAS().GetElement(r, 2) for r in range(3)]
        if abs(normal[2]) < 0.99:  # k is only one slice when the view is axial
            raise InputError("the Red slice view is not axial: set it to Axial to correct a lung on it")
        return Scene.axial_index(sliceNode, Scene.volume_geometry(inputVolume))

    @staticmethod
    def redSliceNode(scene=None):
        """The Red slice view's node, which exists in the scene even when the layout shows no
        Red view (``layoutManager().sliceWidget("Red")`` is then None)."""
        scene = scene or slicer.mrmlScene
        node = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
        if node is None:
            raise InputError("there is no Red slice view: choose a layout with the Red (axial) view")
        return node

    @staticmethod
    def segmentIdOf(segmentationNode, name: str) -> str:
        """The ID of the segment called ``name`` (a lung or the tumour)."""
        if not segmentationNode:
            raise InputError("there is no segmentation yet: run the lungs first")
        segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(name)
        if not segmentId:
            raise InputError(f"the segmentation has no {name} segment")
        return segmentId

    @staticmethod
    def addSeed(seedsNode, lps, label: str, inputVolume=None) -> tuple[float, float, float]:
        """Add a labelled seed at an LPS point (the library's coordinates, in the frame of
        ``inputVolume``) to a markups node; returns its world RAS position (the scene's)."""
        from LungTumorReconLib.seeds_io import Seed

        return Scene.add_seed(seedsNode, Seed(label=label, lps=tuple(float(v) for v in lps)), inputVolume)


#
# LungTumorReconTest
#


class LungTumorReconTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode: Reload and Test). The pytest suite in Testing/ runs
    the same Logic on slicer-core without the Slicer application."""

    def setUp(self):
        slicer.mrmlScene.Clear()
        # A fresh Slicer lacks scikit-image and friends; in testing mode the confirmation
        # answers yes without a dialog.
        from LungTumorReconLib.resources import resource_path

        ensurePythonDependencies(str(resource_path("requirements.txt")))

    def runTest(self):
        self.setUp()
        self.test_LungTumorRecon1()
        self.setUp()
        self.test_LungTumorRecon2()

    def _loadSample(self):
        from LungTumorReconLib.resources import resource_path

        self.delayDisplay("Loading the sample CT and its seeds")
        volume = slicer.util.loadVolume(str(resource_path("SampleData", "lung1_image.nrrd")))
        seeds = slicer.util.loadMarkups(str(resource_path("SampleData", "lung1_seeds.mrk.json")))
        return volume, seeds

    def test_LungTumorRecon1(self):
        """The blocking API on the sample CT: lungs only."""
        volume, _seeds = self._loadSample()
        logic = LungTumorReconLogic()
        nodes = logic.process(volume, lungs="threshold", tumor="none", recon="none")
        names = Scene(slicer.mrmlScene).segment_names(nodes["segmentation"])
        self.assertEqual(sorted(names), ["left lung", "right lung"])
        self.delayDisplay("Test passed")

    def test_LungTumorRecon2(self):
        """The panel's path on the sample CT: the whole pipeline from its tumour seed in a
        PythonSlicer child process, then the tumour alone again inside those lungs."""
        volume, seeds = self._loadSample()
        logic = LungTumorReconLogic()
        self.delayDisplay("Running the pipeline out of process")
        job = logic.startJob(volume, seedsNode=seeds, stage="all", lungs="threshold", tumor="gk", recon="mc",
                             python=pythonSlicerExecutable())
        try:
            job.wait(600)
            self.assertIsNone(job.error)
            nodes = logic.applyJobResult(job, volume)
        finally:
            job.cleanup()
        segmentation = nodes["segmentation"]
        scene = Scene(slicer.mrmlScene)
        self.assertEqual(sorted(scene.segment_names(segmentation)), ["left lung", "right lung", "tumor"])
        self.assertIsNotNone(nodes["model"])
        self.assertIsNotNone(nodes["tumors_table"])
        lungsBefore = scene.segment_masks(segmentation, Scene.volume_geometry(volume))

        self.delayDisplay("Re-running the tumour stage inside the current lungs")
        job = logic.startJob(volume, seedsNode=seeds, stage="tumor", lungs="threshold", tumor="gk",
                             outputSegmentation=segmentation, python=pythonSlicerExecutable())
        try:
            job.wait(600)
            self.assertIsNone(job.error)
            again = logic.applyJobResult(job, volume, segmentation)
        finally:
            job.cleanup()
        self.assertIs(again["segmentation"], segmentation)
        lungsAfter = scene.segment_masks(segmentation, Scene.volume_geometry(volume))
        for lung in ("right lung", "left lung"):
            self.assertTrue((lungsAfter[lung] == lungsBefore[lung]).all())
        self.delayDisplay("Test passed")
