"""The web panel's state, typed (trame's ``TypedState`` over this dataclass).

The browser reads and writes these fields by their state ids (``typed.name.<field>``);
the logic sets them through ``typed.data.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from LungTumorReconLib.finetune import FINETUNABLE_METHODS
from LungTumorReconLib.io.seeds import RIGHT_LUNG
from LungTumorReconLib.pipeline import methods
from LungTumorReconLib.pipeline.options import PipelineOptions

NAMESPACE = "ltr"


def method_items(stage: str) -> list[dict]:
    """A select box's items: each method's label shown (the default marked recommended), when to
    use it below, its id chosen."""
    choices = methods.METHOD_CHOICES[stage]
    return [{"title": methods.method_label(stage, m), "value": m, "subtitle": methods.method_description(stage, m)}
            for m in choices]


def method_hint_table() -> dict[str, dict[str, str]]:
    """Each stage's methods by id: when to use it (the hint under a method box)."""
    return {stage: {m: methods.method_description(stage, m) for m in choices}
            for stage, choices in methods.METHOD_CHOICES.items()}


@dataclass
class PanelState:
    # methods, as the select boxes hold them
    lungs: str = methods.DEFAULT_LUNGS
    tumor: str = methods.DEFAULT_TUMOR
    recon: str = methods.DEFAULT_RECON
    device: str = "auto"
    # the method boxes' items and hints (in the state: their words hold quotes)
    method_choices: dict = field(default_factory=lambda: {s: method_items(s) for s in methods.METHOD_CHOICES})
    method_hints: dict = field(default_factory=method_hint_table)
    # the case shown, and opening another (an upload, or a CT of the server's --data folder)
    case_name: str = ""
    case_busy: bool = False
    case_message: str = ""
    data_cases: list[str] = field(default_factory=list)
    data_case: str = ""
    upload_limit_mb: int = 0
    # a running stage
    busy: bool = False
    progress: int = 0
    message: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    # seeds and the view
    placing: str = ""
    seeds: list[dict] = field(default_factory=list)
    correct_lung: str = RIGHT_LUNG
    axial_k: int = 0
    axial_probe: dict = field(default_factory=dict)  # the axial view's pixel-to-RAS map (tests click with it)
    # results
    volume_rows: list[dict] = field(default_factory=list)
    tumor_headers: list[dict] = field(default_factory=list)
    tumor_rows: list[dict] = field(default_factory=list)
    model: str = ""
    volume_note: str = ""  # what the tumour method's volume includes
    candidates: list[dict] = field(default_factory=list)
    has_heterogeneity: bool = False
    show_heterogeneity: bool = False
    # export
    mrb_name: str = "lungtumorrecon.mrb"
    saved: str = ""
    saved_url: str = ""  # the saved .mrb, to download to the browser (relative to the page)
    # fine-tuning on corrected cases (folders on the server's machine)
    cases_dir: str = ""
    finetune_model: str = FINETUNABLE_METHODS[0]
    finetune_out: str = ""
    finetune_steps: str = "200"  # as the text field holds it; the logic reads the number
    finetune_busy: bool = False
    finetune_progress: int = 0
    finetune_message: str = ""
    finetune_weights: str = ""  # the adapted weights, once done
    # DICOM SEG and SR of the segments as they are now (a folder on the server's machine), and a PACS
    dicom_folder: str = ""
    pacs_destination: str = ""  # AET@HOST:PORT or a DICOMweb URL
    dicom_busy: bool = False  # sending
    dicom_message: str = ""
    # follow-up: this CT (or a file) as baseline, a later CT of the same patient (paths on the server's machine)
    followup_baseline_current: bool = True  # the CT shown as baseline (its tumour seeds follow it)
    followup_baseline_path: str = ""  # else this CT: a DICOM folder or an image file
    followup_path: str = ""
    followup_baseline_date: str = ""  # YYYY-MM-DD, both or none (the DICOM study dates then)
    followup_date: str = ""
    followup_out: str = ""
    followup_busy: bool = False
    followup_progress: int = 0
    followup_message: str = ""
    followup_rows: list[dict] = field(default_factory=list)  # the growth table (text by GROWTH_COLUMNS key)
    followup_recist: str = ""
    followup_shown: bool = False  # both CTs side by side in the views


# What belongs to the case shown: back to these defaults when another case is opened.
CASE_FIELDS = ("progress", "message", "error", "warnings", "placing", "seeds", "axial_k", "volume_rows",
               "tumor_headers", "tumor_rows", "model", "volume_note", "candidates", "has_heterogeneity", "show_heterogeneity",
               "saved", "saved_url", "dicom_message", "followup_message", "followup_rows", "followup_recist", "followup_shown",
               "followup_progress")


def options_from_state(state: PanelState) -> PipelineOptions:
    """The one place the web panel's state becomes options."""
    return PipelineOptions(lungs=state.lungs, tumor=state.tumor, recon=state.recon, device=state.device)

# The panel's controls by the option they set: errors name an option by its control.
CONTROL_LABELS = {"lungs": "Lung method", "tumor": "Tumour method", "recon": "Surface method", "device": "Device"}
FINETUNE_LABELS = {"model": "Model to adapt", "steps": "Steps", "max_minutes": "Minutes", "validation": "Validation",
                   "device": "Device"}
DICOM_LABELS = {"timeout_s": "Timeout", "calling_aet": "Calling AE title"}
FOLLOWUP_LABELS = {"baseline": "Baseline CT", "followup": "Follow-up CT", "dates": "Dates", "seeds_path": "Seeds",
                   "lungs": "Lung method", "tumor": "Tumour method", "device": "Device"}


def finetune_model_items() -> list[dict]:
    """The fine-tuning model box's items: the deep tumour methods it supports."""
    return [{"title": methods.method_label("tumor", m), "value": m} for m in FINETUNABLE_METHODS]
