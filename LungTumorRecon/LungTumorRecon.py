"""LungTumorRecon: Slicer module (Module, Widget, Logic, Test) over LungTumorReconLib: a stage runs
through the library's StageSession, its result reaches the scene through its ResultPresenter.
Not for clinical use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

# Only what Slicer's own Python has is imported here; the pipeline after ensurePythonDependencies().
from LungTumorReconLib.errors import LungTumorReconError
from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG
from LungTumorReconLib.mrml.roles import Role
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.options import PipelineOptions
from LungTumorReconModule import dicom_panel, finetune_panel, followup_panel, sample_data
from LungTumorReconModule.methods_ui import (DeviceChoice, LungMethod, ReconMethod, TumorMethod, default,
                                             describe_method_combos, method_id)
from LungTumorReconModule.dependencies import ensurePythonDependencies, pythonSlicerExecutable
from LungTumorReconModule.correction_panel import CorrectionSection, newSegmentEditor
from LungTumorReconModule.panel import StageProgress, guarded, showHeterogeneity, shownErrors
from LungTumorReconModule.seeds_section import SeedsSection

if TYPE_CHECKING:  # these import the pipeline, which needs the packages installed on first use
    from LungTumorReconLib.mrml.presenter import ResultNodes, ResultPresenter
    from LungTumorReconLib.pipeline.session import StageOutcome, StageSession

_CONTROL_LABELS = {"lungs": _("Lungs: Method"), "tumor": _("Tumour: Method"),  # errors name options by control
                   "recon": _("3D reconstruction: Method"), "device": _("Input: Device")}

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
        self.parent.helpText = _("Lung segments, a lung-tumour segment and a 3D tumour model from a chest CT. Place "
                                 "seeds labelled 'right lung', 'left lung' or 'tumor', choose the methods and Apply. "
                                 "Not for clinical use.")
        self.parent.acknowledgementText = _("Sample data: pyradiomics lung1 (BSD-3). Methods: see docs/methods.md.")
        slicer.app.connect("startupCompleted()", sample_data.registerSampleData)


#
# LungTumorReconParameterNode
#


@parameterNodeWrapper
class LungTumorReconParameterNode:
    """The module's state, saved with the scene: the CT, the seeds (points labelled 'tumor', 'right
    lung' or 'left lung'), the methods (the CLI's --lungs, --tumor, --recon, --device), the lung to
    correct and the output segmentation ('right lung', 'left lung', 'tumor')."""

    inputVolume: vtkMRMLScalarVolumeNode
    seeds: vtkMRMLMarkupsFiducialNode
    # Enums whose names are the method ids (stored as such), shown by their labels
    lungMethod: LungMethod = default(LungMethod)
    tumorMethod: TumorMethod = default(TumorMethod)
    reconMethod: ReconMethod = default(ReconMethod)
    device: DeviceChoice = default(DeviceChoice)
    correctLung: Annotated[str, Choice([RIGHT_LUNG, LEFT_LUNG])] = RIGHT_LUNG
    outputSegmentation: vtkMRMLSegmentationNode


#
# LungTumorReconWidget
#


class LungTumorReconWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: one section per stage with its own Apply, plus Run all. A stage runs in a child
    process (the library's StageSession), so Slicer stays responsive and Cancel stops it at once."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self._parameterNode = self._parameterNodeGuiTag = None
        self._stage: StageProgress | None = None
        self._jobNodes = (None, None)  # the volume and segmentation the running stage was started on

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LungTumorRecon.ui"))
        self.layout.addWidget(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.connectPanel(slicer.util.childWidgetVariables(uiWidget), LungTumorReconLogic())
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        requirements = self.resourcePath("requirements.txt")
        self._dicom = dicom_panel.DicomPanel(self.layout, lambda: self._parameterNode, requirements)
        self._finetune = finetune_panel.FinetunePanel(self.layout, lambda: self._parameterNode, requirements)
        self._followup = followup_panel.FollowupPanel(self.layout, lambda: self._parameterNode, requirements)
        self.initializeParameterNode()

    def connectPanel(self, ui, logic, editorFactory=newSegmentEditor, timer=None) -> None:
        """The stage sections' widgets (``ui``, from the .ui) wired to ``logic``; a test passes
        stand-ins for Qt's widgets, the Segment Editor and the timer."""
        self.ui, self.logic = ui, logic
        self._stage = StageProgress(ui.progressBar, ui.statusLabel, self._onStageFinished, _CONTROL_LABELS)
        node = lambda: self._parameterNode  # noqa: E731 - the parameter node of the moment
        self._seeds = SeedsSection(ui, node, changed=self._checkCanApply)
        self._correction = CorrectionSection(ui, node, self.onRunStage, lambda: self._stage.busy, editorFactory, timer)
        for button, title, action in (
                (ui.applyLungsButton, _("Lungs"), lambda: self.onRunStage("lungs")),
                (ui.editLungButton, _("Correction"), self._correction.onEditLung),
                (ui.repropagateButton, _("Re-propagation"), self._correction.onRepropagate),
                (ui.applyTumorButton, _("Tumour"), lambda: self.onRunStage("tumor")),
                (ui.editTumorButton, _("Tumour correction"), self._correction.onEditTumour),
                (ui.updateTumorButton, _("Tumour update"), self._correction.updateTumour),
                (ui.applyReconButton, _("3D reconstruction"), lambda: self.onRunStage("recon")),
                (ui.applyButton, _("Run all"), lambda: self.onRunStage("all")),
                (ui.cancelButton, _("Cancel"), self.onCancel)):
            button.connect("clicked()", guarded(title, action))
        ui.candidatesTableWidget.connect("itemSelectionChanged()", self._checkCanApply)
        ui.showHeterogeneityCheckBox.connect("toggled(bool)", guarded(_("Heterogeneity"), self.onShowHeterogeneity))

    def cleanup(self) -> None:
        if self._stage is not None:  # set up: stop every child process the panel started
            self._correction.close()
            for part in (self._stage, self._finetune, self._followup):
                part.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self._correction.close()  # no editing effect stays active outside the module
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # the stage's nodes are about to go
        self._correction.close()
        self._seeds.placer.observe(None)
        self._seeds.setCandidates([])
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
            describe_method_combos(self.ui, qt.Qt.ToolTipRole)  # connectGui has just refilled the boxes
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        idle = not self._stage.busy
        hasVolume = bool(p and p.inputVolume)
        hasSegmentation = bool(hasVolume and p.outputSegmentation)
        self._seeds.follow()  # the seeds node may have been changed in its selector
        self.ui.applyButton.enabled = idle and hasVolume
        self.ui.applyButton.toolTip = (_("Run every stage: lungs, tumour and 3D model") if hasVolume
                                       else _("Select an input CT"))
        self.ui.applyLungsButton.enabled = idle and hasVolume
        self.ui.applyTumorButton.enabled = idle and hasVolume
        for button in (self.ui.applyReconButton, self.ui.repropagateButton, self.ui.updateTumorButton):
            button.enabled = idle and hasSegmentation
        self.ui.editLungButton.enabled = self.ui.editTumorButton.enabled = hasSegmentation
        self.ui.placeCandidateSeedButton.enabled = self._seeds.canPlaceCandidateSeed()
        self.ui.cancelButton.enabled = not idle

    # -- running a stage -------------------------------------------------------------------------
    def _options(self) -> PipelineOptions:
        """The one place the panel's parameters become options."""
        p = self._parameterNode
        return PipelineOptions(lungs=method_id(p.lungMethod), tumor=method_id(p.tumorMethod),
                               recon=method_id(p.reconMethod), device=method_id(p.device))

    def onRunStage(self, stage: str, correctionSlice: int | None = None) -> None:
        """Start one stage (the scene is only changed when it finishes); an error is one line."""
        if self._stage.busy:
            return
        p = self._parameterNode
        title = methods.stage_title(stage)
        options = self._options()
        with shownErrors(title, _CONTROL_LABELS):
            deep = methods.needs_torch(stage, options.lungs, options.tumor, options.recon,
                                       has_lungs=bool(p.outputSegmentation))
            ensurePythonDependencies(self.resourcePath("requirements.txt"), deep=deep)  # may ask the user
            with slicer.util.WaitCursor():  # writing the CT for the child takes a moment
                session = self.logic.startStage(stage, p.inputVolume, p.seeds, p.outputSegmentation, options,
                                                correctionLung=p.correctLung, correctionSlice=correctionSlice,
                                                python=pythonSlicerExecutable())
            self._jobNodes = (p.inputVolume, p.outputSegmentation)
            self._stage.start(session, title)
        self._checkCanApply()

    def onCancel(self) -> None:
        self._stage.cancel()

    def _onStageFinished(self, outcome: StageOutcome) -> None:
        volume, segmentation = self._jobNodes
        self._jobNodes = (None, None)
        self._checkCanApply()
        if outcome.update is None:  # cancelled or failed: the scene is unchanged
            return
        with self._correction.tumourUpdate.paused():  # the stage's result is no edit to measure again
            nodes = self.logic.applyOutcome(outcome, volume, segmentation)
        p = self._parameterNode
        if p is not None and not p.outputSegmentation and nodes.segmentation is not None:
            p.outputSegmentation = nodes.segmentation
        if outcome.update.candidates is not None:
            self._seeds.setCandidates(outcome.update.candidates, volume)
        self.ui.tumorsTableView.setMRMLTableNode(nodes.tumors_table)  # a lung stage keeps the tumour's table
        if self.ui.showHeterogeneityCheckBox.checked:
            self.onShowHeterogeneity(True)  # the new run's map replaced the old one
        self.ui.statusLabel.text = outcome.message + "".join(f"\n{w}" for w in outcome.update.warnings)

    def onShowHeterogeneity(self, checked: bool) -> None:
        p = self._parameterNode
        node = self.logic.presenter().node_for(Role.HETEROGENEITY, p.inputVolume if p else None) if checked else None
        showHeterogeneity(node)
        if checked and node is None:
            self.ui.statusLabel.text = _("No tumour heterogeneity map yet: run the tumour stage")


#
# LungTumorReconLogic
#


class LungTumorReconLogic(ScriptedLoadableModuleLogic):
    """A thin adapter: MRML nodes in, the library's pipeline, MRML nodes out. :meth:`process`
    runs in this process and blocks; :meth:`startStage` runs one stage in a child process (the
    panel's way) and :meth:`applyOutcome` puts its result into the scene. A script that uses
    both is in docs/front-ends.md."""

    def __init__(self, newStageRunner=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # makes the StageRunner a stage runs in: the library's StageSession, or a test's fake
        self.newStageRunner = newStageRunner

    def getParameterNode(self):
        return LungTumorReconParameterNode(super().getParameterNode())

    @staticmethod
    def presenter(scene: Scene | None = None) -> ResultPresenter:
        from LungTumorReconLib.mrml.presenter import ResultPresenter

        return ResultPresenter(scene or Scene(slicer.mrmlScene))

    def process(self, inputVolume, seedsNode=None, options: PipelineOptions | None = None, outputSegmentation=None,
                scene: Scene | None = None) -> ResultNodes:
        """Run the pipeline on ``inputVolume`` and put its results into the scene (blocking)."""
        from LungTumorReconLib.pipeline.run import check_options, run_on_volume

        options = options or PipelineOptions()
        presenter = self.presenter(scene)
        inputs = presenter.stage_inputs("all", inputVolume, seedsNode)
        device = check_options(options)
        result = run_on_volume(inputs.ct, inputs.seeds, options, device)
        return presenter.add_result(result, volume_node=inputVolume, segmentation_node=outputSegmentation)

    def startStage(self, stage: str, inputVolume, seedsNode=None, outputSegmentation=None,
                   options: PipelineOptions | None = None, correctionLung: str | None = None,
                   correctionSlice: int | None = None, python: str | None = None,
                   scene: Scene | None = None) -> StageSession:
        """Start one stage (see ``Stage``) in a child process run by ``python`` (in desktop Slicer,
        :func:`pythonSlicerExecutable`, or the Logic's ``newStageRunner``); the scene is not
        changed until :meth:`applyOutcome`."""
        from LungTumorReconLib.pipeline.session import StageSession

        inputs = self.presenter(scene).stage_inputs(stage, inputVolume, seedsNode, outputSegmentation)
        session = (self.newStageRunner or StageSession)(python=python)
        session.start(stage, inputs, options or PipelineOptions(), correctionLung, correctionSlice)
        return session

    def applyOutcome(self, outcome: StageOutcome, inputVolume, outputSegmentation=None,
                     scene: Scene | None = None) -> ResultNodes:
        """Put a finished stage's result into the scene: only the segments its stage replaces (a
        new segmentation node when ``outputSegmentation`` is None), the model, the heterogeneity
        map and the tables. A failed or cancelled stage raises its one-line error."""
        if outcome.update is None:
            raise outcome.error or LungTumorReconError(outcome.message)
        return self.presenter(scene).apply_update(outcome.update, inputVolume, outputSegmentation)


#
# LungTumorReconTest
#


class LungTumorReconTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode: Reload and Test). The pytest suite in Testing/ runs
    the same Logic on slicer-core without the Slicer application."""

    def setUp(self):
        from LungTumorReconLib.resources import resource_path

        slicer.mrmlScene.Clear()
        # A fresh Slicer lacks scikit-image and friends; in testing mode the confirmation answers yes.
        ensurePythonDependencies(str(resource_path("requirements.txt")))

    def runTest(self):
        for test in (self.test_LungTumorRecon1, self.test_LungTumorRecon2):
            self.setUp()
            test()

    def _loadSample(self):
        from LungTumorReconLib.resources import resource_path

        return (slicer.util.loadVolume(str(resource_path("SampleData", "lung1_image.nrrd"))),
                slicer.util.loadMarkups(str(resource_path("SampleData", "lung1_seeds.mrk.json"))))

    def test_LungTumorRecon1(self):
        """The blocking API on the sample CT: lungs only."""
        volume, _seeds = self._loadSample()
        nodes = LungTumorReconLogic().process(volume, options=PipelineOptions(lungs="threshold", tumor="none",
                                                                              recon="none"))
        self.assertEqual(sorted(Scene(slicer.mrmlScene).segment_names(nodes.segmentation)), ["left lung", "right lung"])
        self.delayDisplay("Test passed")

    def test_LungTumorRecon2(self):
        """The panel's path on the sample CT: the whole pipeline from its tumour seed in a
        PythonSlicer child process, then the tumour alone again inside those lungs."""
        volume, seeds = self._loadSample()
        logic = LungTumorReconLogic()
        self.delayDisplay("Running the pipeline out of process")
        options = PipelineOptions(lungs="threshold", tumor="gk", recon="mc")
        session = logic.startStage("all", volume, seeds, options=options, python=pythonSlicerExecutable())
        session.wait(600)
        nodes = logic.applyOutcome(session.finish(), volume)
        segmentation, scene = nodes.segmentation, Scene(slicer.mrmlScene)
        self.assertEqual(sorted(scene.segment_names(segmentation)), ["left lung", "right lung", "tumor"])
        self.assertTrue(nodes.model is not None and nodes.tumors_table is not None)
        lungsBefore = scene.segment_masks(segmentation, Scene.volume_geometry(volume))

        self.delayDisplay("Re-running the tumour stage inside the current lungs")
        session = logic.startStage("tumor", volume, seeds, segmentation, options, python=pythonSlicerExecutable())
        session.wait(600)
        again = logic.applyOutcome(session.finish(), volume, segmentation)
        self.assertIs(again.segmentation, segmentation)
        lungsAfter = scene.segment_masks(segmentation, Scene.volume_geometry(volume))
        for lung in ("right lung", "left lung"):
            self.assertTrue((lungsAfter[lung] == lungsBefore[lung]).all())
        self.delayDisplay("Test passed")
