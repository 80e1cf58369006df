"""Saving and loading a scene: one node, the whole scene as .mrml with its files, or a .mrb
bundle, with Slicer's own writers and readers. The file half of the MRML adapter
(:class:`~LungTumorReconLib.mrml.scene.Scene` inherits it)."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.mrml.application import slicer_module


class SceneFiles:
    """Scene files; expects ``self.mrml`` (the vtkMRMLScene) and ``self.nodes_by_class``."""

    def save_node(self, node, path: str | Path) -> Path:
        """Write one node with its default storage node (Slicer's own writer and format)."""
        path = Path(path)
        storage = node.GetStorageNode()
        if storage is None:
            storage = node.CreateDefaultStorageNode()
            self.mrml.AddNode(storage)
            node.SetAndObserveStorageNodeID(storage.GetID())
        storage.SetFileName(str(path))
        if node.IsA("vtkMRMLSegmentationNode"):
            storage.SetCropToMinimumExtent(False)  # keep the input's geometry
        if node.IsA("vtkMRMLVolumeNode") or node.IsA("vtkMRMLSegmentationNode"):
            storage.SetUseCompression(True)
        if not storage.WriteData(node):
            raise OSError(f"{path}: Slicer failed to write {node.GetName()}")
        return path

    def save_mrml(self, folder: str | Path, default_extensions: dict[str, str] | None = None) -> Path:
        """Save every storable node into ``folder`` and the scene as ``folder/scene.mrml``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ext = {
            "vtkMRMLScalarVolumeNode": ".nrrd",
            "vtkMRMLLabelMapVolumeNode": ".nrrd",
            "vtkMRMLSegmentationNode": ".seg.nrrd",
            "vtkMRMLModelNode": ".vtk",
            "vtkMRMLMarkupsFiducialNode": ".mrk.json",
            "vtkMRMLTableNode": ".tsv",
            "vtkMRMLTransformNode": ".h5",
        }
        ext.update(default_extensions or {})
        used: set[str] = set()
        for node in self.nodes_by_class("vtkMRMLStorableNode"):
            if node.GetHideFromEditors() and node.GetStorageNode() is None:
                continue
            suffix = next((e for cls, e in ext.items() if node.IsA(cls)), None)
            if suffix is None:
                continue
            stem = _safe_file_stem(node.GetName()) or node.GetID()
            candidate = stem
            n = 1
            while candidate in used:
                n += 1
                candidate = f"{stem}_{n}"
            used.add(candidate)
            self.save_node(node, folder / f"{candidate}{suffix}")
            node.GetStorageNode().SetFileName(f"{candidate}{suffix}")  # relative: the folder moves
        mrml = folder / "scene.mrml"
        self.mrml.SetRootDirectory(str(folder))
        self.mrml.SetURL(str(mrml))
        if not self.mrml.Commit():
            raise OSError(f"{mrml}: Slicer failed to write the scene")
        return mrml

    def save_mrb(self, path: str | Path) -> Path:
        """Save the whole scene as a Slicer data bundle (.mrb)."""
        path = Path(path)
        with tempfile.TemporaryDirectory(prefix="ltr-mrb-") as tmp:
            bundle = Path(tmp) / path.name.rsplit(".", 1)[0]
            self.save_mrml(bundle)
            with _vtk_messages_off():  # vtkArchive logs every zipped file
                ok = self.mrml.WriteToMRB(str(path))
            if not ok:
                raise OSError(f"{path}: Slicer failed to write the scene bundle")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SceneFiles:
        """A fresh scene (of the calling class, Scene) read from a .mrml or .mrb file."""
        path = Path(path)
        if not path.is_file():
            raise InputError("no such scene file", path)
        scene = cls(slicer_module().vtkMRMLScene())
        if path.suffix.lower() == ".mrb":
            with _vtk_messages_off():
                ok = scene.mrml.ReadFromMRB(str(path))
        else:
            scene.mrml.SetURL(str(path))
            ok = scene.mrml.Import()
        if not ok:
            raise InputError("Slicer could not read this scene", path)
        return scene


@contextmanager
def _vtk_messages_off():
    """Silence VTK's output window (vtkArchive reports every file it zips as 'Info')."""
    from vtkmodules.vtkCommonCore import vtkOutputWindow

    window = vtkOutputWindow.GetInstance()
    previous = window.GetDisplayMode()
    window.SetDisplayModeToNever()
    try:
        yield
    finally:
        window.SetDisplayMode(previous)


def _safe_file_stem(name: str) -> str:
    keep = [c if c.isalnum() or c in "-_" else "_" for c in name.strip()]
    return "".join(keep).strip("_")
