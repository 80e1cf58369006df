"""LungTumorRecon: Slicer module (Module, Widget, Logic, Test) over LungTumorReconLib.

The Logic only adapts the library's pipeline to MRML nodes; every algorithm lives in
LungTumorReconLib. Not for clinical use.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

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
from LungTumorReconLib.scene import Scene

# Import name of each requirement in Resources/requirements.txt.
_IMPORT_NAMES = {"scikit-image": "skimage", "scikit-fuzzy": "skfuzzy", "scikit-learn": "sklearn"}

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

    SampleData.SampleDataLogic.registerCustomSampleDataCategory("LungTumorRecon", title="Lung Tumor Recon")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="LungTumorRecon",
        sampleName="LungTumorReconLung1",
        thumbnailFileName=str(resource_path("Icons", "LungTumorRecon.png")),
        uris=resource_path("SampleData", "lung1_image.nrrd").as_uri(),
        fileNames="lung1_image.nrrd",
        nodeNames="lung1",
    )


def ensurePythonDependencies(requirementsPath: str) -> None:
    """Install only what Slicer's Python lacks; never upgrade or replace Slicer's own packages."""
    import importlib.util

    if hasattr(slicer, "packaging"):  # Slicer >= 5.9: checks versions, asks the user, installs the missing
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(requirementsPath), requester="LungTumorRecon")
        return
    with open(requirementsPath, encoding="utf-8") as f:
        requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    missing = [
        r for r in requirements
        if importlib.util.find_spec(_IMPORT_NAMES.get(r.split(">")[0].split("=")[0].strip(), r)) is None
    ]
    if missing:
        slicer.util.pip_install(missing)


#
# LungTumorReconParameterNode
#


@parameterNodeWrapper
class LungTumorReconParameterNode:
    """The module's state, saved with the scene.

    inputVolume - the chest CT.
    seeds - markups points labelled 'tumor', 'right lung' or 'left lung'.
    lungMethod, tumorMethod, reconMethod, device - as the CLI's --lungs, --tumor, --recon, --device.
    outputSegmentation - filled with 'right lung', 'left lung' and 'tumor' segments.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    seeds: vtkMRMLMarkupsFiducialNode
    lungMethod: Annotated[str, Choice(list(methods.LUNG_METHODS))] = methods.DEFAULT_LUNGS
    tumorMethod: Annotated[str, Choice(list(methods.TUMOR_METHODS))] = methods.DEFAULT_TUMOR
    reconMethod: Annotated[str, Choice(list(methods.RECON_METHODS))] = methods.DEFAULT_RECON
    device: Annotated[str, Choice(list(methods.DEVICES))] = "auto"
    outputSegmentation: vtkMRMLSegmentationNode


#
# LungTumorReconWidget
#


class LungTumorReconWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LungTumorRecon.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LungTumorReconLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
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
        ok = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.applyButton.enabled = ok
        self.ui.applyButton.toolTip = _("Segment the lungs and tumour") if ok else _("Select an input CT")

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute results."), waitCursor=True):
            ensurePythonDependencies(self.resourcePath("requirements.txt"))
            p = self._parameterNode
            result = self.logic.process(
                p.inputVolume,
                seedsNode=p.seeds,
                lungs=p.lungMethod,
                tumor=p.tumorMethod,
                recon=p.reconMethod,
                device=p.device,
                outputSegmentation=p.outputSegmentation,
            )
            if not p.outputSegmentation and result["segmentation"] is not None:
                p.outputSegmentation = result["segmentation"]


#
# LungTumorReconLogic
#


class LungTumorReconLogic(ScriptedLoadableModuleLogic):
    """A thin adapter: MRML nodes in, :func:`run_on_volume`, MRML nodes out."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LungTumorReconParameterNode(super().getParameterNode())

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
        """Run the pipeline on ``inputVolume`` and put its results into the scene.

        Returns the nodes by role: volume, segmentation, model, seeds, volumes_table, tumors_table,
        and ``result`` (the library's PipelineResult).
        """
        from LungTumorReconLib.ct_io import CTVolume
        from LungTumorReconLib.pipeline import PipelineOptions, check_options, run_on_volume

        if not inputVolume:
            raise ValueError("input volume is invalid")
        start = time.time()
        logging.info("LungTumorRecon: processing started")
        scene = scene or Scene(slicer.mrmlScene)
        options = PipelineOptions(lungs=lungs, tumor=tumor, recon=recon, device=device)
        resolved_device = check_options(options)
        ct = CTVolume(
            array=Scene.volume_array(inputVolume),
            geometry=Scene.volume_geometry(inputVolume),
            path=inputVolume.GetName(),
        )
        seeds = Scene.seeds_from_node(seedsNode) if seedsNode else []
        result = run_on_volume(ct, seeds, options, resolved_device, progress=logging.info)
        nodes = scene.add_result(result, volume_node=inputVolume, segmentation_node=outputSegmentation)
        nodes["result"] = result
        logging.info(f"LungTumorRecon: processing completed in {time.time() - start:.2f} s")
        return nodes


#
# LungTumorReconTest
#


class LungTumorReconTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode: Reload and Test). The pytest suite in Testing/ runs
    the same Logic on slicer-core without the Slicer application."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LungTumorRecon1()

    def test_LungTumorRecon1(self):
        from LungTumorReconLib.resources import resource_path

        self.delayDisplay("Loading the sample CT")
        volume = slicer.util.loadVolume(str(resource_path("SampleData", "lung1_image.nrrd")))
        logic = LungTumorReconLogic()
        nodes = logic.process(volume, lungs="threshold", tumor="none", recon="none")
        names = Scene(slicer.mrmlScene).segment_names(nodes["segmentation"])
        self.assertEqual(sorted(names), ["left lung", "right lung"])
        self.delayDisplay("Test passed")
