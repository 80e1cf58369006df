"""How a pipeline result is shown in Slicer's scene: which nodes, tables and colour maps.

:class:`ResultPresenter` decides what a result becomes (a segmentation, the tumour model, the
heterogeneity map, the two measurement tables) and which of them a stage replaces;
:class:`~LungTumorReconLib.mrml.scene.Scene` does the MRML work. Every node made here carries
its :class:`~LungTumorReconLib.mrml.roles.Role` and a reference to its CT, and is found again
by them (:meth:`ResultPresenter.node_for`), never by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry
from LungTumorReconLib.dicom.terminology import segment_terminologies
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import TUMOR
from LungTumorReconLib.mrml.roles import (
    HETEROGENEITY_COLORMAP,
    NODE_NAMES,
    RECIST_AXES,
    RECIST_AXIS_COLORS,
    ROLE_ATTRIBUTE,
    SOURCE_REFERENCE,
    VOLUMES_COLUMNS,
    Role,
)
from LungTumorReconLib.mrml.scene import Scene
from LungTumorReconLib.pipeline.session import SceneUpdate, StageInputs
from LungTumorReconLib.pipeline.stages import Stage, as_stage


@dataclass
class ResultNodes:
    """The scene's nodes for one result, by role (None: the result has none)."""

    volume: object
    segmentation: object | None = None
    seeds: object | None = None
    model: object | None = None
    heterogeneity: object | None = None
    volumes_table: object | None = None
    tumors_table: object | None = None
    recist_axes: list = field(default_factory=list)  # line markups: each tumour's two RECIST axes
    result: object | None = None  # the PipelineResult shown


class ResultPresenter:
    """Puts pipeline results into a :class:`Scene` and finds them again.

    Example::

        scene = Scene()
        presenter = ResultPresenter(scene)
        nodes = presenter.add_result(run_pipeline("ct.nrrd", PipelineOptions()))
        presenter.node_for(Role.TUMORS_TABLE, nodes.volume)  # the same table node
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene

    # -- finding the project's nodes -------------------------------------------------------
    def tag(self, node, role: Role, volume_node=None):
        """Mark ``node`` as the project's node of ``role`` for the CT ``volume_node``."""
        node.SetAttribute(ROLE_ATTRIBUTE, role.value)
        if volume_node is not None:
            node.SetNodeReferenceID(SOURCE_REFERENCE, volume_node.GetID())
        return node

    def nodes_for(self, role: Role, volume_node=None) -> list:
        """Every node of ``role`` made for ``volume_node`` (any CT when None)."""
        found = []
        for node in self.scene.nodes_by_class("vtkMRMLNode"):
            if node.GetAttribute(ROLE_ATTRIBUTE) != role.value:
                continue
            if volume_node is not None and node.GetNodeReferenceID(SOURCE_REFERENCE) != volume_node.GetID():
                continue
            found.append(node)
        return found

    def node_for(self, role: Role, volume_node=None):
        """The newest node of ``role`` made for ``volume_node``, or None."""
        found = self.nodes_for(role, volume_node)
        return found[-1] if found else None

    def remove(self, role: Role, volume_node=None) -> None:
        for node in self.nodes_for(role, volume_node):
            self.scene.mrml.RemoveNode(node)

    def stage_inputs(self, stage: Stage | str, volume_node, seeds_node=None, segmentation_node=None) -> StageInputs:
        """What a stage starts from, as the scene holds it now: the CT, the placed seeds (in the
        CT's frame) and, except for Run all, the segments with the user's edits."""
        if not volume_node:
            raise InputError("select an input CT")
        ct = Scene.volume_ct(volume_node)
        seeds = Scene.seeds_from_node(seeds_node, volume_node) if seeds_node is not None else []
        segments = {}
        if as_stage(stage) is not Stage.ALL and segmentation_node is not None:
            segments = self.scene.segment_masks(segmentation_node, ct.geometry)
        return StageInputs(ct=ct, seeds=seeds, segments=segments)

    def save_case_for_finetuning(self, volume_node, folder: str | Path, segmentation_node=None,
                                 name: str | None = None) -> tuple[Path, Path]:
        """Write the CT and its current tumour segment (with the user's corrections) as a case
        for fine-tuning: ``folder/NAME.nrrd`` and ``folder/NAME.seg.nrrd``.

        Parameters
        ----------
        volume_node : vtkMRMLScalarVolumeNode
            The CT.
        folder : str or Path
            The cases folder (made if needed).
        segmentation_node : vtkMRMLSegmentationNode, optional
            The segmentation holding the ``tumor`` segment; by default the project's segmentation
            of this CT (found by its role).
        name : str, optional
            The case's name; by default the CT node's, made unique in ``folder``.

        Returns
        -------
        tuple of Path
            The CT file and the segmentation file.
        """
        from LungTumorReconLib.finetune.cases import unique_case_name, write_case

        if not volume_node:
            raise InputError("select an input CT")
        segmentation_node = segmentation_node or self.node_for(Role.SEGMENTATION, volume_node)
        if segmentation_node is None or TUMOR not in self.scene.segment_names(segmentation_node):
            raise InputError("there is no tumour segment to save: segment (or paint) the tumour first")
        ct = Scene.volume_ct(volume_node)
        tumor = self.scene.segment_masks(segmentation_node, ct.geometry)[TUMOR]
        return write_case(folder, name or unique_case_name(folder, volume_node.GetName() or "case"), ct, tumor)

    # -- follow-up -------------------------------------------------------------------------------
    def load_followup(self, folder: str | Path, baseline_volume, followup_volume, align: bool = True):
        """Put a finished follow-up folder into the scene (not for clinical use).

        Parameters
        ----------
        folder : str or Path
            What ``lungtumorrecon followup`` (or a FollowupJob) wrote: ``followup.json``,
            ``baseline.seg.nrrd``, ``followup.seg.nrrd``, ``registration.h5``.
        baseline_volume, followup_volume : vtkMRMLScalarVolumeNode
            The two CTs it was computed from; each gets its segmentation.
        align : bool, optional
            Put the follow-up volume and segmentation under the registration's transform node,
            so that they are shown aligned on the baseline.

        Returns
        -------
        FollowupNodes
            The nodes (segmentations, transform, growth table), the growth rows, the RECIST
            line and each tumour's centre in world RAS at both times
            (:mod:`~LungTumorReconLib.mrml.followup_scene`).
        """
        from LungTumorReconLib.mrml.followup_scene import load_followup

        return load_followup(self, folder, baseline_volume, followup_volume, align)

    def write_followup_inputs(self, baseline_volume, followup_volume, folder: str | Path, seeds_node=None,
                              dicom_files: tuple = (None, None)) -> tuple[Path, Path, Path | None]:
        """The files a follow-up job reads, written from the scene into ``folder``: each CT (its
        DICOM series when known: ``dicom_files``, the files Slicer's DICOM database gives for each,
        or the folder the library read it from; else an NRRD of its voxels) and the placed seeds
        in the baseline's frame as baseline seeds (None without seeds)."""
        from LungTumorReconLib.mrml.followup_scene import write_seeds_file, write_volume_file

        if not baseline_volume or not followup_volume:
            raise InputError("select both CTs: the baseline and the follow-up")
        if baseline_volume is followup_volume:
            raise InputError("the baseline and the follow-up are the same CT: select two")
        folder = Path(folder)
        return (write_volume_file(baseline_volume, folder, "baseline", dicom_files[0]),
                write_volume_file(followup_volume, folder, "followup", dicom_files[1]),
                write_seeds_file(seeds_node, baseline_volume, folder / "baseline-seeds.mrk.json"))

    # -- whole results -----------------------------------------------------------------------
    def export_dicom(self, volume_node, folder: str | Path, segmentation_node=None, seeds_node=None,
                     source_files: list | None = None) -> list[Path]:
        """The CT's segments as they are now (the user's corrections included) as a DICOM SEG and SR
        in ``folder``; the CT must have come from DICOM (``source_files``: its files, when the node
        does not say where it was read from)."""
        from LungTumorReconLib.dicom.export import export_segments

        if not volume_node:
            raise InputError("select an input CT")
        ct = Scene.volume_ct(volume_node)
        if not ct.series_uid:
            raise InputError("this CT was not loaded from DICOM: there is no study to export into")
        segmentation_node = segmentation_node or self.node_for(Role.SEGMENTATION, volume_node)
        if segmentation_node is None:
            raise InputError("there is nothing to export: segment the lungs or the tumour first")
        segments = self.scene.segment_masks(segmentation_node, ct.geometry)
        seeds = Scene.seeds_from_node(seeds_node, volume_node) if seeds_node is not None else []
        made_by = "as in the scene, corrections included"
        return export_segments(ct, segments, folder, seeds, {"lungs": made_by, "tumor": made_by}, source_files)

    def add_result(self, result, volume_node=None, segmentation_node=None) -> ResultNodes:
        """Put a :class:`PipelineResult` into the scene: the CT (unless given), the segmentation,
        the model, the seeds and the measurement tables, beside whatever is there."""
        ct = result.ct
        g = ct.geometry
        volume = volume_node
        if volume is None:
            volume = self.scene.add_volume(ct.array, g, name="CT")
            Scene.mark_dicom_source(volume, ct)
        nodes = ResultNodes(volume=volume, result=result)
        if result.segments:
            nodes.segmentation = self._segmentation(result.segments, g, volume, segmentation_node, result.tumors)
        if result.seeds:
            nodes.seeds = self.tag(self.scene.add_seeds(result.seeds, name=NODE_NAMES[Role.SEEDS]), Role.SEEDS, volume)
        self._add_measurements(nodes, result.segments, result.tumors, g, result.surface_lps, result.heterogeneity)
        return nodes

    def apply(self, result, volume_node, segmentation_node=None, segments: list[str] | None = None,
              remeasures_tumor: bool = False) -> ResultNodes:
        """Put a stage's result into the scene in place of the previous one.

        Only the named ``segments`` are replaced (all of the result's when None), so the user's
        other segments and corrections stay as they are. The model, the heterogeneity map and
        the tumour table are replaced when the stage brings them or replaces the tumour; a lung
        stage keeps them. The volumes table is rebuilt from the segmentation as it now is.

        ``remeasures_tumor``: the stage measured the tumour segment as it is now, perhaps edited.
        An earlier model no longer matches it and goes, and the heterogeneity map keeps only the
        voxels of the tumour as it now is (the memberships are the clustering's; none for painted
        voxels it never saw)."""
        g = result.ct.geometry
        names = list(result.segments) if segments is None else segments
        masks = {n: result.segments.get(n, np.zeros(g.shape_kji, dtype=bool)) for n in names}
        node = self._segmentation({n: m for n, m in masks.items() if m.any()}, g, volume_node, segmentation_node,
                                  result.tumors)
        segmentation = node.GetSegmentation()
        for name, mask in masks.items():  # a stage that found nothing removes the old segment
            if not mask.any() and segmentation.GetSegmentIdBySegmentName(name):
                segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName(name))
        replaces_tumor = TUMOR in names
        if result.surface_lps is not None or replaces_tumor or remeasures_tumor:
            self.remove(Role.TUMOR_MODEL, volume_node)
        heterogeneity = result.heterogeneity
        earlier_map = self.node_for(Role.HETEROGENEITY, volume_node) if remeasures_tumor else None
        if earlier_map is not None and heterogeneity is None:
            heterogeneity = Scene.volume_array(earlier_map)
        if heterogeneity is not None or replaces_tumor:
            self.remove(Role.HETEROGENEITY, volume_node)
        self.remove(Role.VOLUMES_TABLE, volume_node)
        if replaces_tumor or result.tumors:  # a lung stage brings no tumours and keeps the tumour's table
            self.remove(Role.TUMORS_TABLE, volume_node)
            self.remove(Role.RECIST_AXIS, volume_node)
        nodes = ResultNodes(volume=volume_node, segmentation=node, result=result)
        now = self.scene.segment_masks(node, g)
        if remeasures_tumor and heterogeneity is not None:  # no tumour segment now: an empty map, not shown
            heterogeneity = np.where(now.get(TUMOR, False), heterogeneity, 0.0).astype(np.float32)
        self._add_measurements(nodes, now, result.tumors, g, result.surface_lps, heterogeneity)
        for role, name in ((Role.TUMOR_MODEL, "model"), (Role.HETEROGENEITY, "heterogeneity"),
                           (Role.TUMORS_TABLE, "tumors_table")):
            if getattr(nodes, name) is None:  # kept from an earlier stage
                setattr(nodes, name, self.node_for(role, volume_node))
        nodes.recist_axes = nodes.recist_axes or self.nodes_for(Role.RECIST_AXIS, volume_node)
        return nodes

    def apply_update(self, update: SceneUpdate, volume_node, segmentation_node=None) -> ResultNodes:
        """A finished stage's :class:`SceneUpdate` into the scene (see :meth:`apply`)."""
        return self.apply(update.result, volume_node, segmentation_node, segments=update.replaced_segments,
                          remeasures_tumor=update.remeasures_tumor)

    def refresh_segment_volumes(self, segmentation_node, volume_node):
        """Rebuild the volumes table from the segmentation as it is now (after edits)."""
        geometry = Scene.volume_geometry(volume_node)
        self.remove(Role.VOLUMES_TABLE, volume_node)
        return self._volumes_table(self.scene.segment_masks(segmentation_node, geometry), geometry, volume_node)

    # -- the parts -------------------------------------------------------------------------------
    def _segmentation(self, masks: dict[str, np.ndarray], geometry: VolumeGeometry, volume_node, node=None,
                      tumors: list | None = None):
        terms = {name: t.slicer_entry() for name, t in segment_terminologies(masks, tumors or []).items()}
        node = self.scene.set_segmentation(masks, geometry, name=NODE_NAMES[Role.SEGMENTATION],
                                           reference_volume=volume_node, node=node, terminologies=terms)
        if not node.GetAttribute(ROLE_ATTRIBUTE):
            self.tag(node, Role.SEGMENTATION, volume_node)
        return node

    def _add_measurements(self, nodes: ResultNodes, segments: dict[str, np.ndarray], tumors: list,
                          g: VolumeGeometry, surface_lps=None, heterogeneity: np.ndarray | None = None) -> None:
        volume = nodes.volume
        if surface_lps is not None:
            nodes.model = self.tag(self.scene.add_model(surface_lps, name=NODE_NAMES[Role.TUMOR_MODEL]),
                                   Role.TUMOR_MODEL, volume)
        if heterogeneity is not None and heterogeneity.any():
            nodes.heterogeneity = self._heterogeneity_map(heterogeneity, g, volume)
        nodes.volumes_table = self._volumes_table(segments, g, volume)
        if tumors:
            rows = []
            for i, tumor in enumerate(tumors, start=1):
                row = {"tumor": f"tumor {i}"}
                values = tumor.as_dict()
                lung_rads = values.pop("lung_rads", None) or {}
                row.update({k: v for k, v in values.items() if not isinstance(v, list) and v is not None})
                # lung_rads_category, _rule, _label: the label says "suggestion, not for clinical use"
                row.update({f"lung_rads_{k}": v for k, v in lung_rads.items()})
                rows.append(row)
            nodes.tumors_table = self.tag(self.scene.add_table(rows, name=NODE_NAMES[Role.TUMORS_TABLE]),
                                          Role.TUMORS_TABLE, volume)
            nodes.recist_axes = self._recist_axes(tumors, volume)

    def _recist_axes(self, tumors: list, volume_node) -> list:
        """Each tumour's longest axial diameter and short axis as line markups on their slice,
        named and coloured per tumour."""
        lines = []
        for i, tumor in enumerate(tumors, start=1):
            color = RECIST_AXIS_COLORS[(i - 1) % len(RECIST_AXIS_COLORS)]
            for attribute, axis in RECIST_AXES:
                ends = getattr(tumor, attribute, None)
                if ends is None:  # measured before the end points were kept
                    continue
                name = NODE_NAMES[Role.RECIST_AXIS].format(tumor=f"tumor {i}", axis=axis)
                lines.append(self.tag(self.scene.add_line(ends, name, color), Role.RECIST_AXIS, volume_node))
        return lines

    def _volumes_table(self, segments: dict[str, np.ndarray], g: VolumeGeometry, volume_node):
        rows = [{"segment": name, "volume_ml": float(m.sum()) * g.voxel_volume_ml, "voxels": int(m.sum())}
                for name, m in segments.items()]
        table = self.scene.add_table(rows, name=NODE_NAMES[Role.VOLUMES_TABLE], columns=VOLUMES_COLUMNS)
        return self.tag(table, Role.VOLUMES_TABLE, volume_node)

    def _heterogeneity_map(self, heterogeneity: np.ndarray, g: VolumeGeometry, volume_node):
        """The tumour-like membership as a colour-mapped float volume (intra-tumour heterogeneity)."""
        node = self.scene.add_volume(heterogeneity.astype(np.float32), g, name=NODE_NAMES[Role.HETEROGENEITY])
        display = node.GetDisplayNode()
        if display is not None:
            display.SetAndObserveColorNodeID(HETEROGENEITY_COLORMAP)
            display.SetWindowLevel(1.0, 0.5)
            # 0 outside the tumour: transparent there, so that as a foreground layer it colours the
            # tumour only and leaves the CT around it as it is
            display.SetApplyThreshold(True)
            display.SetThreshold(1e-6, float(heterogeneity.max()))
        return self.tag(node, Role.HETEROGENEITY, volume_node)
