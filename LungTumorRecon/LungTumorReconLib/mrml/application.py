"""Slicer's application side for a scene outside desktop Slicer: the application logic,
the module logics, colours and the IO manager that reads .mrb, set up as Slicer does."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from LungTumorReconLib.errors import UnavailableError


def slicer_module():
    """The ``slicer`` package (desktop Slicer's, or the slicer-core wheel's)."""
    try:
        import slicer
    except ImportError:
        raise UnavailableError(
            "Slicer's scene is not available: install slicer-core (pip install '.[headless]') or run inside Slicer"
        ) from None
    return slicer


@dataclass
class Logics:
    """The module logics a scene is set up with (a host's, or ours)."""

    app: object
    volumes: object
    segmentations: object
    markups: object
    models: object
    tables: object
    subject_hierarchy: object


def register_module_logics(slicer, scene, app_logic, reuse: bool) -> Logics:
    """The module logics the scene needs, registered with the application logic as desktop
    Slicer does (this also registers their node classes); ``reuse`` keeps a host's own."""
    found = {}
    for name, logic_class in (
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("Markups", slicer.vtkSlicerMarkupsLogic),
        ("Models", slicer.vtkSlicerModelsLogic),
        ("Tables", slicer.vtkSlicerTablesLogic),
        ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
    ):
        logic = app_logic.GetModuleLogic(name) if reuse else None
        if logic is None:
            logic = logic_class()
            logic.SetMRMLScene(scene)
            logic.SetMRMLApplicationLogic(app_logic)
            app_logic.SetModuleLogic(name, logic)
        found[name] = logic
    return Logics(app=app_logic, volumes=found["Volumes"], segmentations=found["Segmentations"],
                  markups=found["Markups"], models=found["Models"], tables=found["Tables"],
                  subject_hierarchy=found["SubjectHierarchy"])


@dataclass
class HeadlessApplication:
    """What :func:`set_up_headless` made; kept alive as long as the scene."""

    logics: Logics
    cache_dir: tempfile.TemporaryDirectory
    remote_io: object
    data_io: object


def set_up_headless(slicer, scene) -> HeadlessApplication:
    """Give a bare ``vtkMRMLScene`` what desktop Slicer's application would."""
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app.SetModuleLogic("Colors", colors)
    logics = register_module_logics(slicer, scene, app, reuse=False)
    # .mrb reading unpacks through the DataIOManager's cache.
    cache_dir = tempfile.TemporaryDirectory(prefix="ltr-mrml-cache-")
    remote_io = slicer.vtkMRMLRemoteIOLogic()
    remote_io.SetMRMLScene(scene)
    remote_io.GetCacheManager().SetRemoteCacheDirectory(cache_dir.name)
    data_io = slicer.vtkDataIOManagerLogic()
    data_io.SetMRMLApplicationLogic(app)
    data_io.SetAndObserveDataIOManager(remote_io.GetDataIOManager())
    remote_io.AddDataIOToScene()
    return HeadlessApplication(logics=logics, cache_dir=cache_dir, remote_io=remote_io, data_io=data_io)
