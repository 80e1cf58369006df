"""The MRML adapter: the one module that reads and writes Slicer's MRML nodes.

Inside desktop Slicer it works on ``slicer.mrmlScene``. Elsewhere it builds a real MRML
scene from the ``slicer-core`` wheel and sets it up the way the application would
(application logic, module logics, colours, subject hierarchy, an IO manager for .mrb).
``slicer`` is imported lazily, so the rest of the library imports without it.

Coordinates: the scene is RAS; everything handed in and out of this module is LPS
(points, surfaces) or (k, j, i) arrays with a :class:`VolumeGeometry`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from vtkmodules.util.misc import calldata_type
from vtkmodules.util.vtkConstants import VTK_ID_TYPE, VTK_INT, VTK_LONG, VTK_LONG_LONG, VTK_OBJECT

from LungTumorReconLib.coordinates import VolumeGeometry, lps_to_ras, ras_to_lps
from LungTumorReconLib.dicom.terminology import TERMINOLOGY_TAG
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import Seed
from LungTumorReconLib.mrml.application import register_module_logics, set_up_headless
from LungTumorReconLib.mrml.application import slicer_module as _slicer
from LungTumorReconLib.mrml.files import SceneFiles
from LungTumorReconLib.mrml.roles import (
    DICOM_SERIES_ATTRIBUTE,
    DICOM_SOURCE_ATTRIBUTE,
    LUNG_WINDOW,
    MODEL_COLOR,
    OTHER_SEGMENT_COLOR,
    SEGMENT_COLORS,
)

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS <-> RAS as a 4×4 matrix


def _between_frames(source_node, target_node):
    """The transform from ``source_node``'s frame to ``target_node``'s (None: world), through
    their parent transforms; the identity when neither has one."""
    slicer = _slicer()
    from vtkmodules.vtkCommonTransforms import vtkGeneralTransform

    transform = vtkGeneralTransform()
    source = source_node.GetParentTransformNode() if source_node is not None else None
    target = target_node.GetParentTransformNode() if target_node is not None else None
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(source, target, transform)
    return transform


def _vtk_matrix(matrix: np.ndarray):
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    m = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(matrix[r, c]))
    return m


def _numpy_matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


class Scene(SceneFiles):
    """A Slicer MRML scene with the node operations the pipeline and the front ends need
    (volumes, segmentations, markups, tables, models, files). What a result becomes in the
    scene is :class:`~LungTumorReconLib.mrml.presenter.ResultPresenter`'s choice."""

    def __init__(self, mrml_scene=None) -> None:
        slicer = _slicer()
        self._cache_dir: tempfile.TemporaryDirectory | None = None
        if getattr(slicer, "app", None) is not None:  # inside desktop Slicer: its scene is set up
            self.logics = None
            self.mrml = mrml_scene if mrml_scene is not None else slicer.mrmlScene
            return
        self.mrml = mrml_scene if mrml_scene is not None else slicer.vtkMRMLScene()
        self._headless = set_up_headless(slicer, self.mrml)
        self._cache_dir = self._headless.cache_dir
        self.logics = self._headless.logics
        # Desktop Slicer's Qt plugins put displayable nodes into the subject hierarchy; do the same.
        self.mrml.AddObserver(self.mrml.NodeAddedEvent, self._on_node_added)

    @classmethod
    def attach(cls, mrml_scene, app_logic) -> "Scene":
        """A Scene over one that a host (trame-slicer's SlicerApp) has set up: the host's module
        logics are used, and the ones it lacks are registered with its application logic."""
        slicer = _slicer()
        self = cls.__new__(cls)
        self.mrml = mrml_scene
        self._cache_dir = None
        self.logics = register_module_logics(slicer, mrml_scene, app_logic, reuse=True)
        mrml_scene.AddObserver(mrml_scene.NodeAddedEvent, self._on_node_added)
        return self

    @calldata_type(VTK_OBJECT)
    def _on_node_added(self, caller, event, node) -> None:
        if node is not None and not node.GetHideFromEditors():
            if node.IsA("vtkMRMLDisplayableNode") or node.IsA("vtkMRMLTableNode"):
                self._ensure_in_hierarchy(node)

    def close(self) -> None:
        """Clear the scene and drop its temporary cache."""
        self.mrml.Clear(0)
        if self._cache_dir is not None:
            self._cache_dir.cleanup()
            self._cache_dir = None

    # -- helpers --------------------------------------------------------------------------
    def _shn(self):
        slicer = _slicer()
        return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.mrml)

    def _ensure_in_hierarchy(self, node) -> None:
        shn = self._shn()
        if shn is not None and shn.GetItemByDataNode(node) == 0:
            shn.CreateItem(shn.GetSceneItemID(), node)

    def _add(self, node):
        self.mrml.AddNode(node)  # the subject hierarchy item comes from _on_node_added (or Slicer's plugins)
        return node

    def _segmentations_logic(self):
        slicer = _slicer()
        return self.logics.segmentations if self.logics else slicer.modules.segmentations.logic()

    def nodes_by_class(self, class_name: str) -> list:
        n = self.mrml.GetNumberOfNodesByClass(class_name)
        return [self.mrml.GetNthNodeByClass(i, class_name) for i in range(n)]

    def node_by_name(self, name: str, class_name: str = "vtkMRMLNode"):
        for node in self.nodes_by_class(class_name):
            if node.GetName() == name:
                return node
        return None

    # -- volumes --------------------------------------------------------------------------
    def add_volume(self, array: np.ndarray, geometry: VolumeGeometry, name: str = "CT"):
        """Add a scalar volume from a (k, j, i) array with its LPS geometry."""
        slicer = _slicer()
        from vtkmodules.util.numpy_support import numpy_to_vtk
        from vtkmodules.vtkCommonDataModel import vtkImageData

        node = slicer.vtkMRMLScalarVolumeNode()
        node.SetName(name)
        image = vtkImageData()
        image.SetDimensions(*geometry.size)
        image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
        node.SetAndObserveImageData(image)
        node.SetIJKToRASMatrix(_vtk_matrix(geometry.ijk_to_ras_matrix()))
        self._add(node)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(*LUNG_WINDOW)
        return node

    def add_volume_from_file(self, path: str | Path, name: str | None = None):
        """Load a volume file with Slicer's own reader (Volumes logic)."""
        slicer = _slicer()
        path = Path(path)
        if self.logics is None:
            return slicer.util.loadVolume(str(path))
        node = self.logics.volumes.AddArchetypeVolume(str(path), name or path.name.split(".")[0])
        if node is None:
            raise InputError("Slicer could not read this volume", path)
        return node

    def add_transform(self, transform, name: str = "Transform"):
        """Add a transform node holding a SimpleITK ``transform`` (LPS, resampling convention),
        read by Slicer's ITK transform reader: it becomes the node's transform from parent."""
        import SimpleITK as sitk

        slicer = _slicer()
        node = self._add(slicer.vtkMRMLTransformNode())
        node.SetName(name)
        with tempfile.TemporaryDirectory(prefix="ltr-transform-") as tmp:
            sitk.WriteTransform(transform, str(Path(tmp) / "transform.h5"))
            storage = slicer.vtkMRMLTransformStorageNode()
            storage.SetFileName(str(Path(tmp) / "transform.h5"))
            if not storage.ReadData(node):  # not kept as the node's storage: its file is gone
                raise RuntimeError(f"Slicer could not read the transform {name!r}")
        return node

    @staticmethod
    def world_ras(node, ras) -> tuple[float, float, float]:
        """A point given in ``node``'s own frame (RAS) where the views show it: through the node's
        parent transforms (the point itself when it has none)."""
        return tuple(float(v) for v in _between_frames(node, None).TransformPoint(*(float(v) for v in ras)))

    @staticmethod
    def volume_geometry(node) -> VolumeGeometry:
        from vtkmodules.vtkCommonMath import vtkMatrix4x4

        m = vtkMatrix4x4()
        node.GetIJKToRASMatrix(m)
        ijk_to_lps = _FLIP @ _numpy_matrix(m)
        spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
        direction = ijk_to_lps[:3, :3] / spacing
        dims = node.GetImageData().GetDimensions()
        return VolumeGeometry(
            size=tuple(int(d) for d in dims),
            spacing=tuple(float(s) for s in spacing),
            origin=tuple(float(o) for o in ijk_to_lps[:3, 3]),
            direction=tuple(float(d) for d in direction.ravel()),
        )

    @classmethod
    def volume_ct(cls, node):
        """A volume node as the library's CTVolume (a copy of its voxels, in LPS)."""
        from LungTumorReconLib.io.ct import CTVolume

        source, series = node.GetAttribute(DICOM_SOURCE_ATTRIBUTE), node.GetAttribute(DICOM_SERIES_ATTRIBUTE)
        return CTVolume(array=cls.volume_array(node), geometry=cls.volume_geometry(node),
                        path=source if source and series else node.GetName(), series_uid=series or None)

    @staticmethod
    def mark_dicom_source(node, ct) -> None:
        """Remember on a volume node the DICOM series ``ct`` (a CTVolume) was read from, if any."""
        if ct.series_uid and ct.path:
            node.SetAttribute(DICOM_SOURCE_ATTRIBUTE, str(ct.path))
            node.SetAttribute(DICOM_SERIES_ATTRIBUTE, str(ct.series_uid))

    @staticmethod
    def volume_array(node) -> np.ndarray:
        """The voxels of a volume node as a (k, j, i) array (a copy)."""
        from vtkmodules.util.numpy_support import vtk_to_numpy

        image = node.GetImageData()
        dims = image.GetDimensions()
        return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0]).copy()

    # -- segmentations ----------------------------------------------------------------------
    def set_segmentation(
        self,
        masks: dict[str, np.ndarray],
        geometry: VolumeGeometry,
        name: str = "Segmentation",
        reference_volume=None,
        node=None,
        terminologies: dict[str, str] | None = None,
    ):
        """Add (or replace the segments of) a segmentation node from named (k, j, i) masks.

        ``terminologies`` gives segments their Slicer ``TerminologyEntry`` (standard codes) by name.

        Segments may overlap; they are collapsed into shared labelmap layers the way Slicer
        does (``CollapseBinaryLabelmaps`` with safe merge), so overlapping segments end up in
        separate layers.
        """
        slicer = _slicer()
        if node is None:
            node = slicer.vtkMRMLSegmentationNode()
            node.SetName(name)
            self._add(node)
            node.CreateDefaultDisplayNodes()
        segmentation = node.GetSegmentation()
        segmentation.SetSourceRepresentationName(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
        if reference_volume is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        else:
            node.SetReferenceImageGeometryParameterFromVolumeNode(None)
            segmentation.SetConversionParameter(
                slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                slicer.vtkSegmentationConverter.SerializeImageGeometry(self._oriented_image(None, geometry)),
            )
        for seg_name, mask in masks.items():
            # A replaced segment keeps its ID and its place in the list: the editor's active
            # segment stays valid, and the slice views keep drawing the segments in the same order.
            segment_id, before_id = seg_name, ""
            color = SEGMENT_COLORS.get(seg_name, OTHER_SEGMENT_COLOR)
            existing = segmentation.GetSegmentIdBySegmentName(seg_name)
            if existing:
                segment_id, color = existing, segmentation.GetSegment(existing).GetColor()
                index = segmentation.GetSegmentIndex(existing)
                if index + 1 < segmentation.GetNumberOfSegments():
                    before_id = segmentation.GetNthSegmentID(index + 1)
                segmentation.RemoveSegment(existing)
            segment = slicer.vtkSegment()
            segment.SetName(seg_name)
            segment.SetColor(*color)
            if seg_name in (terminologies or {}):
                segment.SetTag(TERMINOLOGY_TAG, terminologies[seg_name])
            segment.AddRepresentation(
                slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(),
                self._oriented_image(mask, geometry),
            )
            segmentation.AddSegment(segment, segment_id, before_id)
        segmentation.CollapseBinaryLabelmaps(False)
        return node

    @staticmethod
    def _oriented_image(mask: np.ndarray | None, geometry: VolumeGeometry):
        slicer = _slicer()
        from vtkmodules.util.numpy_support import numpy_to_vtk

        image = slicer.vtkOrientedImageData()
        image.SetExtent(0, geometry.size[0] - 1, 0, geometry.size[1] - 1, 0, geometry.size[2] - 1)
        image.SetImageToWorldMatrix(_vtk_matrix(geometry.ijk_to_ras_matrix()))
        if mask is None:
            return image
        scalars = numpy_to_vtk(np.ascontiguousarray(mask, dtype=np.uint8).ravel(), deep=True)
        image.GetPointData().SetScalars(scalars)
        return image

    def segment_names(self, node) -> list[str]:
        seg = node.GetSegmentation()
        return [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]

    def segment_masks(self, node, geometry: VolumeGeometry) -> dict[str, np.ndarray]:
        """Each segment as a (k, j, i) bool array on ``geometry``."""
        slicer = _slicer()
        from vtkmodules.util.numpy_support import vtk_to_numpy

        seg = node.GetSegmentation()
        reference = self._oriented_image(None, geometry)
        out = {}
        for i in range(seg.GetNumberOfSegments()):
            segment_id = seg.GetNthSegmentID(i)
            image = slicer.vtkOrientedImageData()
            self._segmentations_logic().GetSegmentBinaryLabelmapRepresentation(node, segment_id, image)
            resampled = slicer.vtkOrientedImageData()
            slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
                image, reference, resampled, False, True
            )
            dims = resampled.GetDimensions()
            scalars = resampled.GetPointData().GetScalars()
            if scalars is None:
                arr = np.zeros(geometry.shape_kji, dtype=bool)
            else:
                # a shared layer holds several segments, each under its own label value
                label = seg.GetNthSegment(i).GetLabelValue()
                arr = vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0]) == label
            out[seg.GetNthSegment(i).GetName()] = arr
        return out

    def number_of_layers(self, node) -> int:
        return node.GetSegmentation().GetNumberOfLayers()

    def export_segments_to_models(self, node, smoothing: float = 0.5) -> list:
        """Closed surfaces of every segment, exported to model nodes in a folder."""
        seg = node.GetSegmentation()
        seg.SetConversionParameter("Smoothing factor", str(smoothing))
        node.CreateClosedSurfaceRepresentation()
        shn = self._shn()
        folder = shn.CreateFolderItem(shn.GetSceneItemID(), f"{node.GetName()} models")
        before = {n.GetID() for n in self.nodes_by_class("vtkMRMLModelNode")}
        if not self._segmentations_logic().ExportAllSegmentsToModels(node, folder):
            raise RuntimeError("Slicer failed to export segments to models")
        return [n for n in self.nodes_by_class("vtkMRMLModelNode") if n.GetID() not in before]

    def closed_surfaces_lps(self, node, smoothing: float = 0.5) -> dict[str, object]:
        """Each segment's closed surface (Slicer's conversion) as vtkPolyData in LPS."""
        from vtkmodules.vtkCommonDataModel import vtkPolyData

        from LungTumorReconLib.surface.marching_cubes import transform_polydata

        seg = node.GetSegmentation()
        seg.SetConversionParameter("Smoothing factor", str(smoothing))
        node.CreateClosedSurfaceRepresentation()
        out = {}
        for i in range(seg.GetNumberOfSegments()):
            poly = vtkPolyData()
            node.GetClosedSurfaceRepresentation(seg.GetNthSegmentID(i), poly)
            out[seg.GetNthSegment(i).GetName()] = transform_polydata(poly, _FLIP)
        return out

    # -- models ---------------------------------------------------------------------------
    def add_model(self, polydata_lps, name: str = "tumor model", color=MODEL_COLOR):
        """Add a model node from a surface in LPS (stored in RAS in the scene)."""
        slicer = _slicer()
        from LungTumorReconLib.surface.marching_cubes import transform_polydata

        node = slicer.vtkMRMLModelNode()
        node.SetName(name)
        node.SetAndObservePolyData(transform_polydata(polydata_lps, _FLIP))
        self._add(node)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetColor(*color)
        return node

    def add_model_from_file(self, path: str | Path):
        if self.logics is None:
            return _slicer().util.loadModel(str(path))
        node = self.logics.models.AddModel(str(path))
        if node is None:
            raise InputError("Slicer could not read this model", path)
        return node

    @staticmethod
    def model_points_lps(node) -> np.ndarray:
        from vtkmodules.util.numpy_support import vtk_to_numpy

        return ras_to_lps(vtk_to_numpy(node.GetPolyData().GetPoints().GetData()))

    # -- markups ----------------------------------------------------------------------------
    def add_seeds(self, seeds: list[Seed], name: str = "Seeds"):
        slicer = _slicer()
        node = slicer.vtkMRMLMarkupsFiducialNode()
        node.SetName(name)
        self._add(node)
        node.CreateDefaultDisplayNodes()
        for seed in seeds:
            self.add_seed(node, seed)
        return node

    @staticmethod
    def add_seed(node, seed: Seed, reference=None) -> tuple[float, float, float]:
        """Add one labelled seed to a markups node. ``seed.lps`` is in the frame of ``reference``
        (the CT node, which may sit under a transform), else in world coordinates. Returns the
        seed's world RAS position (where the slice views jump to)."""
        ras = lps_to_ras(np.asarray(seed.lps, dtype=float))
        world = _between_frames(reference, None).TransformPoint(*ras)
        index = node.AddControlPointWorld(*world)
        node.SetNthControlPointLabel(index, seed.label)
        return tuple(float(v) for v in world)

    @staticmethod
    def seeds_from_node(node, reference=None) -> list[Seed]:
        """The placed points of a markups node as seeds, in the frame of ``reference`` (the CT
        node) or, without one, in world coordinates: the node's own parent transform applied.
        Points still being placed (preview) or skipped in place mode are not seeds."""
        from LungTumorReconLib.io.seeds import normalise_label

        slicer = _slicer()
        to_reference = _between_frames(None, reference)
        seeds = []
        for i in range(node.GetNumberOfControlPoints()):
            if node.GetNthControlPointPositionStatus(i) != slicer.vtkMRMLMarkupsNode.PositionDefined:
                continue
            world = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(i, world)
            label = normalise_label(node.GetNthControlPointLabel(i))
            if label is None:
                raise InputError(f"seed {i + 1} is labelled {node.GetNthControlPointLabel(i)!r}: rename it 'tumor', "
                                 "'right lung' or 'left lung' (double-click its label in the point list)")
            ras = np.asarray(to_reference.TransformPoint(*world))
            seeds.append(Seed(label=label, lps=tuple(float(v) for v in ras_to_lps(ras))))
        return seeds

    def add_line(self, ends_lps, name: str, color=(1.0, 1.0, 0.0), locked: bool = True):
        """A line markup between two points given in LPS (stored in RAS), e.g. a measured
        diameter; ``locked``: shown, not dragged (a result, not an input)."""
        slicer = _slicer()
        node = slicer.vtkMRMLMarkupsLineNode()
        node.SetName(name)
        self._add(node)
        node.CreateDefaultDisplayNodes()
        for ras in lps_to_ras(np.asarray(ends_lps, dtype=float).reshape(2, 3)):
            node.AddControlPoint(*(float(v) for v in ras))
        node.SetLocked(locked)
        display = node.GetDisplayNode()
        if display is not None:
            display.SetSelectedColor(*color)  # a markup's unselected points take the selected colour
            display.SetColor(*color)
        return node

    @staticmethod
    def line_ends_lps(node) -> np.ndarray:
        """A line markup's two end points in LPS, (2, 3)."""
        ras = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        for index in range(2):
            node.GetNthControlPointPosition(index, ras[index])
        return ras_to_lps(np.asarray(ras))

    def load_markups(self, path: str | Path, name: str | None = None):
        if self.logics is None:
            return _slicer().util.loadMarkups(str(path))
        node_id = self.logics.markups.LoadMarkups(str(path), name or Path(path).name.split(".")[0])
        if not node_id:
            raise InputError("Slicer could not read these markups", path)
        return self.mrml.GetNodeByID(node_id)

    # -- tables -----------------------------------------------------------------------------
    def add_table(self, rows: list[dict], name: str = "Measurements", columns: list[str] | None = None):
        """A table node with one row per dict; integers become integer columns (voxel counts stay
        exact), other numbers double columns, the rest strings."""
        slicer = _slicer()
        from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkLongLongArray, vtkStringArray

        node = slicer.vtkMRMLTableNode()
        node.SetName(name)
        columns = columns or (list(rows[0].keys()) if rows else [])
        table = node.GetTable()
        for col in columns:
            numeric = all(isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool) for r in rows)
            integer = numeric and all(isinstance(r.get(col), int) for r in rows)
            arr = (vtkLongLongArray() if integer else vtkDoubleArray()) if numeric and rows else vtkStringArray()
            arr.SetName(col)
            for r in rows:
                value = r.get(col)
                if numeric:
                    arr.InsertNextValue(int(value) if integer else float(value))
                else:
                    arr.InsertNextValue("" if value is None else str(value))
            table.AddColumn(arr)
        self._add(node)
        return node

    @staticmethod
    def table_rows(node) -> list[dict]:
        """The rows as dicts: int, float or str as the columns hold them (not vtkVariant's
        six-digit text)."""
        table = node.GetTable()
        cols = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
        rows = []
        for r in range(table.GetNumberOfRows()):
            row = {}
            for c in cols:
                if c.IsA("vtkStringArray"):
                    row[c.GetName()] = c.GetValue(r)
                elif c.IsA("vtkDataArray") and c.GetDataType() in (VTK_LONG_LONG, VTK_INT, VTK_LONG, VTK_ID_TYPE):
                    row[c.GetName()] = int(c.GetTuple1(r))
                else:
                    row[c.GetName()] = float(c.GetTuple1(r))
            rows.append(row)
        return rows

    @staticmethod
    def axial_index(slice_node, geometry: VolumeGeometry) -> int:
        """The CT's axial slice (array index k) that a slice view shows now."""
        from vtkmodules.vtkCommonMath import vtkMatrix4x4

        m = vtkMatrix4x4()
        m.DeepCopy(slice_node.GetSliceToRAS())
        centre_lps = ras_to_lps(_numpy_matrix(m)[:3, 3])
        return geometry.nearest_kji(centre_lps)[0]
