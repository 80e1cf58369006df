"""The one options class every front end fills, and the words each option is named by.

The CLI converts its arguments (``cli._options_from_args``), the Slicer module its parameter
node (``LungTumorReconWidget._options``) and the web app its state (``logic.options_from_state``)
into :class:`PipelineOptions`, each in one place. Errors name an option by its field name
(:class:`~LungTumorReconLib.errors.LungTumorReconError`); :data:`OPTION_LABELS` gives the words
a front end without a name of its own for it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from LungTumorReconLib.pipeline import methods


@dataclass
class PipelineOptions:
    """What to run, and with which files.

    Args:
        lungs, tumor, recon: method ids (:data:`methods.LUNG_METHODS`, ...); ``tumor=None`` is the
            default, see :func:`resolved_tumor`.
        device: "auto", "cpu" or "cuda".
        weights: safetensors for a deep tumour method instead of the shipped ones.
        recon_weights: safetensors for the GAN reconstruction instead of the shipped ones.
        seeds_path, tumor_mask_path, lungs_from, lung_correction: input files of one case; the tumour
            mask and the lungs' segmentation may be a DICOM SEG or RTSTRUCT.
        roi: the tumour's RTSTRUCT ROI name or SEG segment label in those files.
        tumor_per_slice: cluster each axial slice on its own (the paper), not in 3D.
        memory_check: refuse a run whose estimated peak memory is above what is free.
    """

    lungs: str = methods.DEFAULT_LUNGS
    tumor: str | None = None
    recon: str = methods.DEFAULT_RECON
    device: str = "auto"
    weights: Path | None = None
    recon_weights: Path | None = None
    seeds_path: Path | None = None
    tumor_mask_path: Path | None = None
    lungs_from: Path | None = None  # start from this segmentation's lungs instead of computing them
    lung_correction: Path | None = None  # a corrected contour of one lung on one slice
    roi: str | None = None  # the tumour's ROI (RTSTRUCT) or segment label (SEG) in a DICOM tumour mask / lungs_from
    tumor_per_slice: bool = False
    memory_check: bool = True


OPTION_LABELS = {  # PipelineOptions field -> words
    "lungs": "lung method",
    "tumor": "tumour method",
    "recon": "surface method",
    "device": "device",
    "weights": "weights file",
    "recon_weights": "reconstruction weights file",
    "seeds_path": "seeds file",
    "tumor_mask_path": "tumour mask",
    "lungs_from": "lungs from a segmentation",
    "lung_correction": "lung correction",
    "roi": "ROI name",
    "tumor_per_slice": "tumour per slice",
    "memory_check": "memory check",
    "jobs": "cases at once",
}


def resolved_tumor(options: PipelineOptions) -> str:
    """The tumour method: the one asked for, else none when a file brings the tumour (a tumour
    mask, or lungs from a segmentation), else the default (gk: seeded, or the best candidate)."""
    if options.tumor is not None:
        return options.tumor
    return "none" if options.tumor_mask_path or options.lungs_from else methods.DEFAULT_TUMOR
