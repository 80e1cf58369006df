"""Stand-ins for desktop Slicer's Qt-bound Python modules, for the module's tests: the
ScriptedLoadableModule base classes, slicer.i18n, the parameterNodeWrapper (the class as it is:
its fields' defaults), qt and ctk. The MRML scene and nodes stay the real ones (slicer-core)."""

from __future__ import annotations

import types
from pathlib import Path


def scripted_module_stubs(resources: Path | None = None, qt: types.ModuleType | None = None) -> dict:
    """``sys.modules`` entries that let LungTumorRecon.py import without desktop Slicer;
    ``resources``: where the Widget's ``resourcePath`` points."""

    class _Base:
        def __init__(self, *args, **kwargs):
            pass

        def resourcePath(self, relative):
            return str(Path(resources or ".") / relative)

    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(slm, name, type(name, (_Base,), {}))
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", tuple(choices))
    return {"slicer.ScriptedLoadableModule": slm, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": pnw,
            "qt": qt or types.ModuleType("qt"), "ctk": types.ModuleType("ctk")}  # CTK's widgets: not used
