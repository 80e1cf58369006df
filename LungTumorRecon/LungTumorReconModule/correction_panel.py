"""Correcting without leaving the module: Slicer's Segment Editor widget
(``qMRMLSegmentEditorWidget``, as LungCTSegmenter embeds it) in the Lungs and Tumour sections,
and the tumour's results recomputed from the segment as edited.

The module computes nothing here: the tumour's measurements, heterogeneity statistics (its HU
spread and solid share), RECIST axes and 3D model come from the library's recon stage run on
the scene's tumour segment (the segment as the user left it, edits included), through
the same StageSession and ResultPresenter as every stage. Segment Editor's undo changes the
segment as an edit does, so an undo is followed by the same recomputation and restores them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import qt
import slicer
import vtk
from slicer.i18n import tr as _

from LungTumorReconLib.io.seeds import TUMOR
from LungTumorReconModule.panel import axialSliceIndex, redSliceNode, segmentIdOf

EDITOR_NODE_TAGS = {"lungs": "LungTumorRecon.LungEditor", "tumor": "LungTumorRecon.TumourEditor"}


def newSegmentEditor(tag: str):
    """A Segment Editor widget on a segment editor node of its own (singleton ``tag``, so that
    the two sections' editors keep their own effect and undo), without node selectors: the
    panel chooses the segmentation and the CT."""
    scene = slicer.mrmlScene
    node = scene.GetSingletonNode(tag, "vtkMRMLSegmentEditorNode")
    if node is None:
        node = slicer.vtkMRMLSegmentEditorNode()
        node.SetSingletonTag(tag)
        node.SetHideFromEditors(True)
        node = scene.AddNode(node)
    editor = slicer.qMRMLSegmentEditorWidget()
    editor.setMRMLScene(scene)
    editor.setMRMLSegmentEditorNode(node)
    editor.setSegmentationNodeSelectorVisible(False)
    editor.setSourceVolumeNodeSelectorVisible(False)
    editor.visible = False
    return editor


class EmbeddedEditor:
    """One section's Segment Editor, shown on one segment of the panel's segmentation."""

    def __init__(self, frame, tag: str, editorFactory: Callable = newSegmentEditor) -> None:
        self.editor = editorFactory(tag)
        frame.layout().addWidget(self.editor)

    def edit(self, segmentationNode, volumeNode, segmentId: str) -> None:
        self.editor.setSegmentationNode(segmentationNode)
        self.editor.setSourceVolumeNode(volumeNode)
        self.editor.setCurrentSegmentID(segmentId)
        self.editor.visible = True

    def close(self) -> None:
        """Hide it and end its effect (the views stop painting)."""
        self.editor.setActiveEffect(None)
        self.editor.visible = False


class TumourUpdate:
    """Runs ``update`` (the recon stage) when the tumour segment's edit has ended: no further
    change for ``SETTLE_MS`` (a brush stroke sends many events), when ``autoUpdate`` is on. A
    running stage delays it; a stage's own result going into the scene (:meth:`paused`) is not
    an edit."""

    SETTLE_MS = 1000

    def __init__(self, update: Callable[[], None], busy: Callable[[], bool], timer=None) -> None:
        self.update, self.busy = update, busy
        self.autoUpdate = False
        self.timer = timer or qt.QTimer()
        self.timer.singleShot = True
        self.timer.setInterval(self.SETTLE_MS)
        self.timer.connect("timeout()", self.onSettled)
        self._node, self._tags = None, []
        self._paused = False

    def watch(self, segmentationNode) -> None:
        """Follow this segmentation's tumour segment (None: none)."""
        if segmentationNode is self._node:
            return
        for tag in self._tags:
            self._node.RemoveObserver(tag)
        self._node, self._tags = segmentationNode, []
        if segmentationNode is not None:
            # an effect's edit of a segment alone in its layer is a SourceRepresentationModified, of a
            # segment sharing its layer (and an undo) a SegmentModified: each names the segment
            self._tags = [segmentationNode.AddObserver(event, self.onSegmentModified)
                          for event in (slicer.vtkSegmentation.SegmentModified,
                                        slicer.vtkSegmentation.SourceRepresentationModified)]

    @vtk.calldata_type(vtk.VTK_STRING)
    def onSegmentModified(self, caller, event, segmentId) -> None:
        if self._paused or not self.autoUpdate:
            return
        if segmentId != caller.GetSegmentation().GetSegmentIdBySegmentName(TUMOR):
            return  # a lung edited: the tumour's results stand
        self.timer.start()  # (re)started: the edit has ended when it times out

    def onSettled(self) -> None:
        if self.busy():
            self.timer.start()  # after the running stage
            return
        self.update()

    @contextmanager
    def paused(self):
        self._paused = True
        try:
            yield
        finally:
            self._paused = False


class CorrectionSection:
    """The Lungs and Tumour sections' correcting: an embedded editor in each, re-propagating a
    corrected lung, and the tumour's results from its edited segment (one button, or at the end
    of each edit). ``runStage(stage, correctionSlice=None)`` is the Widget's; errors it raises
    are shown by the Widget's buttons (:func:`~LungTumorReconModule.panel.shownErrors`)."""

    def __init__(self, ui, parameterNode: Callable, runStage: Callable, busy: Callable[[], bool],
                 editorFactory: Callable = newSegmentEditor, timer=None) -> None:
        self.ui, self.parameterNode, self.runStage = ui, parameterNode, runStage
        self.lungEditor = EmbeddedEditor(ui.lungEditorFrame, EDITOR_NODE_TAGS["lungs"], editorFactory)
        self.tumourEditor = EmbeddedEditor(ui.tumorEditorFrame, EDITOR_NODE_TAGS["tumor"], editorFactory)
        self.tumourUpdate = TumourUpdate(self.updateTumour, busy, timer)
        ui.autoUpdateTumorCheckBox.connect("toggled(bool)", self.onAutoUpdate)

    def onEditLung(self) -> None:
        """This section's editor on the lung to correct (the Correct box)."""
        p = self.parameterNode()
        self.tumourEditor.close()
        self.lungEditor.edit(p.outputSegmentation, p.inputVolume, segmentIdOf(p.outputSegmentation, p.correctLung))

    def onEditTumour(self) -> None:
        p = self.parameterNode()
        self.lungEditor.close()
        self.tumourEditor.edit(p.outputSegmentation, p.inputVolume, segmentIdOf(p.outputSegmentation, TUMOR))
        self.tumourUpdate.watch(p.outputSegmentation)

    def onRepropagate(self) -> None:
        k = axialSliceIndex(self.parameterNode().inputVolume, redSliceNode())
        self.runStage("repropagate", correctionSlice=k)

    def updateTumour(self) -> None:
        """The tumour's measurements, statistics, axes and model from the segment as it is now."""
        self.runStage("recon")

    def onAutoUpdate(self, checked: bool) -> None:
        self.tumourUpdate.autoUpdate = checked
        p = self.parameterNode()
        if checked and p is not None:
            self.tumourUpdate.watch(p.outputSegmentation)

    def close(self) -> None:
        """The module is left or the scene closes: no effect stays active, nothing is watched."""
        self.lungEditor.close()
        self.tumourEditor.close()
        self.tumourUpdate.timer.stop()
        self.tumourUpdate.watch(None)
