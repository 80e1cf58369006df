"""Pieces of the Slicer panel that talk to desktop Slicer's views and modules: seed placement
with a label, the candidates table, the heterogeneity foreground and the Segment Editor
hand-over. They hold no pipeline logic; the Widget wires them to its buttons."""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import qt
import slicer
import vtk

from LungTumorReconLib.errors import InputError, LungTumorReconError
from LungTumorReconLib.io.seeds import normalise_label
from LungTumorReconLib.mrml.roles import HETEROGENEITY_OPACITY, ROLE_ATTRIBUTE, Role
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.methods import stage_title


@contextmanager
def shownErrors(title: str, optionNames: dict[str, str] | None = None):
    """An action's error as one line in Slicer's error box, the panel staying usable (what
    ``slicer.util.tryWithErrorDisplay`` does, in one line): the library's own errors as they
    phrase themselves (``optionNames``: the option by its control), any other with its
    traceback as the details."""
    try:
        yield
    except LungTumorReconError as exc:
        slicer.util.errorDisplay(f"{title}: {exc.describe(optionNames)}")
    except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
        slicer.util.errorDisplay(f"{title} failed: {exc}", detailedText=traceback.format_exc())


def guarded(title: str, action, optionNames: dict[str, str] | None = None):
    """``action`` as a button's slot whose errors are shown (:func:`shownErrors`)."""
    def slot(*args) -> None:
        with shownErrors(title, optionNames):
            action(*args)
    return slot


SEED_KINDS_SHOWN = ("tumour", "right lung", "left lung")  # the words the panel shows; each normalises to a seed label


def askSeedKind(pointLabel: str) -> str | None:
    """Ask what a point placed without a Place button is; its seed label, or None when cancelled."""
    kind = qt.QInputDialog.getItem(slicer.util.mainWindow(), "Seed kind",
                                   f"What is the point {pointLabel}?", list(SEED_KINDS_SHOWN), 0, False)
    return normalise_label(kind) if kind else None


class LabelledSeedPlacer:
    """Slicer's place mode on a point list, where the point placed next gets a given label.

    A point placed any other way (the point list's own button, which names it ``F-1``) gets the
    kind of the last Place button used, or the user is asked (``askKind``). That happens once the
    placing is over (``later``: Qt's next event-loop turn), so that a point added by code, which
    sets its label right after adding it, is left as its code names it."""

    def __init__(self, askKind=None, later=None) -> None:
        self.label: str | None = None  # the kind the next placed point gets
        self.lastLabel: str | None = None  # the kind of the last Place button used
        self.askKind = askKind or askSeedKind
        self.later = later or (lambda call: qt.QTimer.singleShot(0, call))
        self._node = None
        self._tag = None
        self._unnamed: list[str] = []  # IDs of points placed without a Place button, not yet named

    def place(self, node, label: str) -> None:
        self.observe(node)
        self.label = self.lastLabel = label
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(node)
        markupsLogic.StartPlaceMode(False)  # one point, then back to view mode

    def observe(self, node) -> None:
        if self._node is node:
            return
        if self._node is not None:
            self._node.RemoveObserver(self._tag)
        self._node, self._tag, self._unnamed = node, None, []
        if node is not None:
            self._tag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointDefined)

    @vtk.calldata_type(vtk.VTK_INT)
    def _onPointDefined(self, caller, event, index) -> None:
        if not isinstance(index, int) or index < 0:
            index = caller.GetNumberOfControlPoints() - 1
        if self.label is not None:
            caller.SetNthControlPointLabel(index, self.label)
            self.label = None
            return
        self._unnamed.append(caller.GetNthControlPointID(index))
        if len(self._unnamed) == 1:
            self.later(self.nameUnnamedPoints)

    def nameUnnamedPoints(self) -> None:
        """Give each point placed without a Place button, and still not named as a seed, a kind."""
        node, pointIds, self._unnamed = self._node, self._unnamed, []
        for pointId in pointIds if node is not None else []:
            index = node.GetNthControlPointIndexByID(pointId)
            if index < 0 or normalise_label(node.GetNthControlPointLabel(index)) is not None:
                continue  # removed since, or named by its code or the user
            kind = self.lastLabel or self.askKind(node.GetNthControlPointLabel(index))
            if kind is not None:
                node.SetNthControlPointLabel(index, kind)


def candidateCells(candidate, geometry=None) -> tuple[str, ...]:
    """A candidate's row: rank, volume (mL), score, the axial slice of its centre (1-based, as
    the correction's slice numbers; '' without the CT's geometry) and its centre (RAS, mm)."""
    c = candidate
    axialSlice = str(geometry.nearest_kji(c.centroid_lps)[0] + 1) if geometry is not None else ""
    return (str(c.rank), f"{c.volume_ml:.2f}", f"{c.score:.3g}", axialSlice,
            ", ".join(f"{v:.1f}" for v in c.centroid_ras))


def fillCandidatesTable(table, candidates: list, geometry=None) -> None:
    """One row per candidate (:func:`candidateCells`); the best one selected."""
    table.setRowCount(len(candidates))
    for row, c in enumerate(candidates):
        cells = candidateCells(c, geometry)
        for column, text in enumerate(cells):
            table.setItem(row, column, qt.QTableWidgetItem(text))
    if candidates:
        table.selectRow(0)


def seedAtCandidate(seedsNode, candidate, volumeNode) -> None:
    """A 'tumor' seed at a candidate's centre, and the slice views moved there."""
    from LungTumorReconLib.io.seeds import TUMOR, Seed

    ras = Scene.add_seed(seedsNode, Seed(label=TUMOR, lps=candidate.centroid_lps), volumeNode)
    slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)


def showHeterogeneity(node) -> None:
    """The heterogeneity map as every slice view's foreground, or (None) no longer shown."""
    for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
        if node is not None:
            composite.SetForegroundVolumeID(node.GetID())
            composite.SetForegroundOpacity(HETEROGENEITY_OPACITY)
            continue
        shown = slicer.mrmlScene.GetNodeByID(composite.GetForegroundVolumeID() or "")
        if shown is not None and shown.GetAttribute(ROLE_ATTRIBUTE) == Role.HETEROGENEITY.value:
            composite.SetForegroundVolumeID(None)


def axialSliceIndex(inputVolume, sliceNode) -> int:
    """The CT's axial slice (array index k) that an axial slice view shows now."""
    if not inputVolume:
        raise InputError("select an input CT")
    normal = [sliceNode.GetSliceToRAS().GetElement(r, 2) for r in range(3)]
    if abs(normal[2]) < 0.99:  # k is only one slice when the view is axial
        raise InputError("the Red slice view is not axial: set it to Axial to correct a lung on it")
    return Scene.axial_index(sliceNode, Scene.volume_geometry(inputVolume))


def redSliceNode(scene=None):
    """The Red slice view's node, which exists in the scene even when the layout shows no
    Red view (``layoutManager().sliceWidget("Red")`` is then None)."""
    scene = scene or slicer.mrmlScene
    node = scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
    if node is None:
        raise InputError("there is no Red slice view: choose a layout with the Red (axial) view")
    return node


def segmentIdOf(segmentationNode, name: str) -> str:
    """The ID of the segment called ``name`` (a lung or the tumour)."""
    if not segmentationNode:
        raise InputError("there is no segmentation yet: run the lungs first")
    segmentId = segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(name)
    if not segmentId:
        raise InputError(f"the segmentation has no {name} segment")
    return segmentId


class StageProgress:
    """Follows a running StageSession with a QTimer (the MONAIAuto3DSeg pattern): the progress
    bar and status line while it runs, then ``onFinished(outcome)``; a failure is shown in one
    dialog, its option named by ``optionNames``."""

    POLL_MS = 250

    def __init__(self, progressBar, statusLabel, onFinished, optionNames: dict[str, str]) -> None:
        self.progressBar, self.statusLabel = progressBar, statusLabel
        self.onFinished, self.optionNames = onFinished, optionNames
        self.session = None
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self.poll)

    @property
    def busy(self) -> bool:
        return self.session is not None and self.session.busy

    def start(self, session, title: str) -> None:
        self.session = session
        self.progressBar.value = 0
        self.statusLabel.text = f"{title}: starting"
        self.timer.start()

    def cancel(self) -> None:
        if self.busy:
            self.session.cancel()
            self.poll()  # finish now: the child is gone

    def cleanup(self) -> None:
        self.timer.stop()
        if self.session is not None:
            self.session.cleanup()  # kills the child and removes its folder

    def poll(self) -> None:
        session = self.session
        if session is None or not session.busy:
            return
        event = session.poll()
        self.progressBar.value = int(round(100 * (event.fraction or 0.0)))
        self.statusLabel.text = f"{stage_title(session.stage)}: {event.message}"
        if session.running:
            return
        self.timer.stop()
        try:
            outcome = session.finish()
            self.statusLabel.text = outcome.message
            self.progressBar.value = 100 if outcome.update is not None else 0
            if outcome.error is not None:
                slicer.util.errorDisplay(f"{outcome.message}: {outcome.error.describe(self.optionNames)}")
            self.onFinished(outcome)
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            self.statusLabel.text = f"failed: {exc}"
            slicer.util.errorDisplay(str(exc), detailedText=traceback.format_exc())
        finally:
            session.cleanup()
