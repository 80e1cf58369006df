"""Python packages on first use inside desktop Slicer: the pipeline's requirements, and PyTorch
(through the PyTorch extension) for the networks. Nothing is upgraded or replaced in Slicer's
own Python, and nothing is installed without the user's consent."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys

import slicer
from slicer.i18n import tr as _

from LungTumorReconLib.errors import UnavailableError

# Import name of each requirement in Resources/requirements.txt and of the deep methods' packages.
_IMPORT_NAMES = {"scikit-image": "skimage", "scikit-fuzzy": "skfuzzy", "scikit-learn": "sklearn",
                 "dicomweb-client": "dicomweb_client"}
# DICOM export and PACS transfer, installed when first used (highdicom needs pydicom 3).
_DICOM_REQUIREMENTS = ["highdicom>=0.28", "pynetdicom>=3.0", "dicomweb-client>=0.60"]
# What the networks need beside PyTorch (pyproject's "deep" extra; torch comes through PyTorchUtils).
_DEEP_REQUIREMENTS = ["monai>=1.4", "safetensors>=0.4"]


def _requirementName(requirement: str) -> str:
    for separator in "<>=!~;[ ":
        requirement = requirement.split(separator)[0]
    return requirement.strip()


def _slicerPackaging():
    """``slicer.packaging`` (Slicer >= 5.12, not imported by ``slicer`` itself), else None."""
    try:
        return importlib.import_module("slicer.packaging")
    except ImportError:
        return None


def _ensureRequirements(requirements: list[str]) -> None:
    """Install only the requirements Slicer's Python lacks, after the user agrees; never
    upgrade or replace Slicer's own packages. A decline raises UnavailableError."""
    if not requirements:
        return
    slicerPackaging = _slicerPackaging()
    if slicerPackaging is not None:  # checks versions, asks the user, installs the missing
        from packaging.requirements import Requirement

        try:
            # also in testing mode: the self-test needs the packages it runs
            slicerPackaging.pip_ensure([Requirement(r) for r in requirements], requester="LungTumorRecon",
                                       skip_in_testing=False)
        except RuntimeError as exc:  # the user declined
            raise UnavailableError(f"not installed: {', '.join(requirements)}") from exc
        return
    missing = [
        r for r in requirements
        if importlib.util.find_spec(_IMPORT_NAMES.get(_requirementName(r), _requirementName(r))) is None
    ]
    if not missing:
        return
    if not slicer.util.confirmOkCancelDisplay(
        _("LungTumorRecon needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
          "Install them now? (This can take a few minutes.)").format(packages="\n".join(missing)),
        windowTitle=_("Install Python packages"),
    ):
        raise UnavailableError(f"not installed: {', '.join(missing)}")
    slicer.util.pip_install(missing)


def ensureTorch() -> None:
    """PyTorch through the PyTorch extension (PyTorchUtils), which picks the build for this
    computer's GPU and asks the user first. The Extensions Manager installs that extension with
    this one (``EXTENSION_DEPENDS PyTorch``); a module loaded from source may lack it."""
    if importlib.util.find_spec("torch") is not None:
        return
    try:
        import PyTorchUtils
    except ImportError:
        raise UnavailableError(
            "this method needs PyTorch: the 'PyTorch' extension is missing (it comes with LungTumorRecon from the "
            "Extensions Manager); install it there and restart Slicer"
        ) from None
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
        raise UnavailableError("this method needs PyTorch, which was not installed")


def ensurePythonDependencies(requirementsPath: str, deep: bool = False, dicom: bool = False) -> None:
    """The pipeline's packages on first use; with ``deep``, PyTorch and the networks' packages too;
    with ``dicom``, the DICOM SEG/SR and PACS packages."""
    with open(requirementsPath, encoding="utf-8") as f:
        requirements = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    _ensureRequirements(requirements)
    if dicom:
        _ensureRequirements(_DICOM_REQUIREMENTS)
    if deep:
        ensureTorch()
        _ensureRequirements(_DEEP_REQUIREMENTS)


def pythonSlicerExecutable() -> str:
    """The interpreter a job runs with: PythonSlicer inside desktop Slicer (same packages,
    no GUI), else this one."""
    return shutil.which("PythonSlicer") or sys.executable
