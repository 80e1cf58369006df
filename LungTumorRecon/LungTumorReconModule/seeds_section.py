"""The panel's seeds: the Place buttons, the point list's own points and the automatic
candidates. The points are only read when a stage starts (the library's ``stage_inputs``), so
a seed dragged after placing starts the next run from where it is now."""

from __future__ import annotations

from typing import Callable

import slicer
from slicer.i18n import tr as _

from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconModule.panel import LabelledSeedPlacer, fillCandidatesTable, seedAtCandidate

SHOWN_KIND = {TUMOR: "tumour"}  # a seed label as the panel writes it (the label itself stays the id)


class SeedsSection:
    """Wires the Input section's Place buttons and the Tumour section's candidates to the
    parameter node's seeds (``parameterNode()``: the Widget's current one)."""

    def __init__(self, ui, parameterNode: Callable, placer: LabelledSeedPlacer | None = None,
                 changed: Callable[[], None] = lambda: None) -> None:
        self.ui, self.parameterNode, self.changed = ui, parameterNode, changed
        self.placer = placer or LabelledSeedPlacer()
        self.candidates: list = []
        for button, label in ((ui.placeTumorSeedButton, TUMOR), (ui.placeRightLungSeedButton, RIGHT_LUNG),
                              (ui.placeLeftLungSeedButton, LEFT_LUNG)):
            button.connect("clicked()", lambda label=label: self.onPlaceSeed(label))
        ui.placeCandidateSeedButton.connect("clicked()", self.onPlaceCandidateSeed)

    def seedsNode(self):
        """The parameter node's seeds, created on first use."""
        p = self.parameterNode()
        if not p.seeds:
            p.seeds = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Seeds")
        self.follow()
        return p.seeds

    def follow(self) -> None:
        """Watch the seeds node the parameter node holds now: a point placed with the point
        list's own button is named as a seed too (:class:`LabelledSeedPlacer`)."""
        p = self.parameterNode()
        self.placer.observe(p.seeds if p is not None and p.seeds else None)

    def onPlaceSeed(self, label: str) -> None:
        """Slicer's place mode on the seeds node; the point placed next gets ``label``."""
        self.placer.place(self.seedsNode(), label)
        self.ui.statusLabel.text = _("Click in a view to place the {kind} seed").format(
            kind=SHOWN_KIND.get(label, label))

    def onPlaceCandidateSeed(self) -> None:
        row = self.ui.candidatesTableWidget.currentRow()
        if not 0 <= row < len(self.candidates):
            return
        seedAtCandidate(self.seedsNode(), self.candidates[row], self.parameterNode().inputVolume)
        self.ui.statusLabel.text = _("Added a tumour seed at candidate {n}; Apply the tumour stage").format(n=row + 1)

    def setCandidates(self, candidates: list, volume=None) -> None:
        """List the candidates of a tumour stage run on ``volume`` (its slice numbers)."""
        self.candidates = list(candidates)
        geometry = Scene.volume_geometry(volume) if volume is not None else None
        fillCandidatesTable(self.ui.candidatesTableWidget, self.candidates, geometry)
        self.changed()

    def canPlaceCandidateSeed(self) -> bool:
        return bool(self.candidates) and self.ui.candidatesTableWidget.currentRow() >= 0
