"""The web panel's widgets (trame + Vuetify 3). Layout only: every control is bound to a
:class:`~LungTumorReconWeb.state.PanelState` field or calls a :class:`PanelLogic` method."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_server.utils.typed_state import TypedState

from LungTumorReconLib.io.seeds import LEFT_LUNG, RIGHT_LUNG, TUMOR
from LungTumorReconLib.mrml.followup_scene import GROWTH_COLUMNS, GROWTH_LABEL
from LungTumorReconWeb.state import CONTROL_LABELS, FINETUNE_LABELS, PanelState, finetune_model_items

if TYPE_CHECKING:
    from LungTumorReconWeb.cases import CaseLogic
    from LungTumorReconWeb.logic import PanelLogic

TITLE = "LungTumorRecon"
SEED_WORDS = {TUMOR: "tumour", RIGHT_LUNG: RIGHT_LUNG, LEFT_LUNG: LEFT_LUNG}  # the ids stay 'tumor'
SCORE_HELP = ("The score ranks the candidates: larger, rounder and less elongated blobs score higher "
              "(log10 of the volume over 0.03 mL, times roundness, over elongation).")
VOLUME_HEADERS = [{"title": "segment", "key": "segment"}, {"title": "volume (mL)", "key": "volume_ml"},
                  {"title": "voxels", "key": "voxels"}]


def _literal(value: list[dict]) -> str:
    """A constant list as a JavaScript expression for a bound attribute (inside double quotes)."""
    text = json.dumps(value)
    assert "'" not in text, text
    return text.replace('"', "'")


def _section(title: str) -> None:
    html.Div(title, classes="text-subtitle-1 font-weight-bold mt-3 mb-1")


def _select(label: str, state_id: str, items: list[dict], element_id: str, items_override: str | None = None,
            **kwargs) -> None:
    v3.VSelect(label=label, v_model=(state_id,), items=(items_override or _literal(items),), item_title="title",
               item_value="value", density="compact", hide_details=True, id=element_id, **kwargs)


def _method_select(typed: TypedState[PanelState], stage: str, element_id: str, **kwargs) -> None:
    """A method box: the library's labels, each method's one line below it and under the box."""
    n = typed.name
    v3.VSelect(label=CONTROL_LABELS[stage], v_model=(getattr(n, stage),), items=(f"{n.method_choices}.{stage}",),
               item_title="title", item_value="value", item_props=True, density="compact", persistent_hint=True,
               hint=(f"{n.method_hints}.{stage}[{getattr(n, stage)}]",), id=element_id, **kwargs)


def build_panel(typed: TypedState[PanelState], logic: PanelLogic, cases: CaseLogic) -> None:
    """The panel, top to bottom in the order a user works: device, case, seeds, lungs, tumour,
    model, run, results, export."""
    n = typed.name
    busy = n.busy
    with v3.VContainer(classes="pa-3"):
        html.Div(TITLE, classes="text-h6", id="ltr-title")
        v3.VAlert(v_if=n.error, type="error", density="compact", closable=True, id="ltr-error",
                  text=(n.error,), click_close=f"{n.error} = ''", classes="my-2")
        _method_select(typed, "device", "ltr-device", classes="mt-2")
        _case_section(typed, cases)
        _input_section(typed, logic)
        _lungs_section(typed, logic)
        _tumor_section(typed, logic)

        _section("3D reconstruction")
        _method_select(typed, "recon", "ltr-recon-method")
        v3.VBtn("Build 3D model", size="small", classes="mt-1", id="ltr-run-recon", disabled=(busy,),
                click=(logic.start_stage, "['recon']"))

        v3.VDivider(classes="my-3")
        with html.Div(classes="d-flex ga-2"):
            v3.VBtn("Run all", color="primary", id="ltr-run-all", disabled=(busy,),
                    click=(logic.start_stage, "['all']"))
            v3.VBtn("Cancel", color="error", variant="outlined", id="ltr-cancel", disabled=(f"!{busy}",),
                    click=logic.cancel)
        v3.VProgressLinear(model_value=(n.progress,), height=8, classes="mt-2", id="ltr-progress",
                           color=(f"{busy} ? 'primary' : 'success'",))
        html.Div(f"{{{{ {n.message} }}}}", classes="text-caption", id="ltr-message")
        with html.Div(v_if=f"{n.warnings}.length", classes="text-caption text-warning", id="ltr-warnings"):
            html.Div("warning: {{ w }}", v_for=f"w in {n.warnings}")

        _results_section(typed)

        _section("Export")
        with html.Div(classes="d-flex align-center ga-2"):
            v3.VTextField(v_model=(n.mrb_name,), label="Scene file (.mrb)", density="compact",
                          hide_details=True, id="ltr-mrb-name")
            v3.VBtn("Save", size="small", id="ltr-save-mrb", disabled=(busy,), click=logic.save_mrb)
        with html.Div(classes="text-caption", id="ltr-saved"):
            html.Span(f"{{{{ {n.saved} }}}} ")
            html.A("Download", href=(n.saved_url,), download=True, v_if=n.saved_url, id="ltr-download-mrb")
        _dicom_section(typed, logic)
        _finetune_section(typed, logic)
        _followup_section(typed, logic)


def _dicom_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    """The segments as they are now as a DICOM SEG and SR (a DICOM CT only); and to a PACS."""
    n = typed.name
    sending = f"{n.busy} || {n.dicom_busy}"
    _section("DICOM")
    v3.VTextField(v_model=(n.dicom_folder,), label="DICOM export folder", density="compact", hide_details=True,
                  id="ltr-dicom-folder")
    v3.VBtn("Export DICOM", size="small", classes="mt-1", id="ltr-export-dicom", disabled=(sending,),
            click=logic.dicom.export)
    with html.Div(classes="d-flex align-center ga-2 mt-2"):
        v3.VTextField(v_model=(n.pacs_destination,), label="PACS (AET@HOST:PORT or DICOMweb URL)",
                      density="compact", hide_details=True, id="ltr-pacs-destination")
        v3.VBtn("Save", size="small", id="ltr-save-pacs", click=logic.dicom.save_destination)
    v3.VBtn("Send to PACS", size="small", classes="mt-1", id="ltr-send-pacs", disabled=(sending,),
            loading=(n.dicom_busy,), click=logic.dicom.send)
    html.Div(f"{{{{ {n.dicom_message} }}}}", classes="text-caption", id="ltr-dicom-message")


def _finetune_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    """Save the corrected case; adapt a deep tumour model to a folder of such cases."""
    n = typed.name
    tuning = n.finetune_busy
    _section("Fine-tuning (not for clinical use)")
    v3.VTextField(v_model=(n.cases_dir,), label="Cases folder", density="compact", hide_details=True,
                  id="ltr-cases-dir")
    v3.VBtn("Save this case for fine-tuning", size="small", classes="mt-1", id="ltr-save-case",
            disabled=(f"{n.busy} || {tuning}",), click=logic.finetune.save_case)
    _select(FINETUNE_LABELS["model"], n.finetune_model, finetune_model_items(), "ltr-finetune-model", classes="mt-2")
    with html.Div(classes="d-flex ga-2 mt-1"):
        v3.VTextField(v_model=(n.finetune_out,), label="Output folder", density="compact", hide_details=True,
                      id="ltr-finetune-out")
        v3.VTextField(v_model=(n.finetune_steps,), label=FINETUNE_LABELS["steps"], type="number",
                      density="compact", hide_details=True, id="ltr-finetune-steps", style="max-width: 90px")
    with html.Div(classes="d-flex ga-2 mt-1"):
        v3.VBtn("Adapt the model to the cases", size="small", color="primary", id="ltr-finetune-start",
                disabled=(tuning,), click=logic.finetune.start)
        v3.VBtn("Cancel", size="small", color="error", variant="outlined", id="ltr-finetune-cancel",
                disabled=(f"!{tuning}",), click=logic.finetune.cancel)
    v3.VProgressLinear(model_value=(n.finetune_progress,), height=6, classes="mt-2", id="ltr-finetune-progress")
    html.Div(f"{{{{ {n.finetune_message} }}}}", classes="text-caption", id="ltr-finetune-message")
    html.Div(f"Adapted weights (for --weights): {{{{ {n.finetune_weights} }}}}", v_if=n.finetune_weights,
             classes="text-caption font-weight-bold", id="ltr-finetune-weights")


def _followup_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    """A later CT against a baseline: growth, doubling time, Lung-RADS, RECIST; both CTs side by side."""
    n = typed.name
    running = n.followup_busy
    _section("Follow-up (not for clinical use)")
    v3.VCheckbox(v_model=(n.followup_baseline_current,), label="Baseline: the CT shown (its tumour seeds are followed)",
                 density="compact", hide_details=True, id="ltr-followup-use-current")
    v3.VTextField(v_if=f"!{n.followup_baseline_current}", v_model=(n.followup_baseline_path,),
                  label="Baseline CT (DICOM folder or image file)", density="compact", hide_details=True,
                  id="ltr-followup-baseline")
    v3.VTextField(v_model=(n.followup_path,), label="Follow-up CT (DICOM folder or image file)", density="compact",
                  hide_details=True, classes="mt-1", id="ltr-followup-path")
    with html.Div(classes="d-flex ga-2 mt-1"):
        for state_id, label, key in ((n.followup_baseline_date, "Baseline date", "baseline-date"),
                                     (n.followup_date, "Follow-up date", "date")):
            v3.VTextField(v_model=(state_id,), label=label, placeholder="YYYY-MM-DD", density="compact",
                          hide_details=True, id=f"ltr-followup-{key}")
    v3.VTextField(v_model=(n.followup_out,), label="Output folder", density="compact", hide_details=True,
                  classes="mt-1", id="ltr-followup-out")
    with html.Div(classes="d-flex ga-2 mt-1"):
        v3.VBtn("Compare with the baseline", size="small", color="primary", id="ltr-followup-start",
                disabled=(f"{running} || {n.busy}",), click=logic.followup.start)
        v3.VBtn("Cancel", size="small", color="error", variant="outlined", id="ltr-followup-cancel",
                disabled=(f"!{running}",), click=logic.followup.cancel)
    v3.VProgressLinear(model_value=(n.followup_progress,), height=6, classes="mt-2", id="ltr-followup-progress")
    html.Div(f"{{{{ {n.followup_message} }}}}", classes="text-caption", style="white-space: pre-line",
             id="ltr-followup-message")
    with html.Div(v_if=f"{n.followup_rows}.length", id="ltr-followup-results"):
        html.Div(GROWTH_LABEL, classes="text-caption text-error", id="ltr-followup-label")
        headers = [{"title": title, "key": key} for key, title in GROWTH_COLUMNS]
        v3.VDataTable(items=(n.followup_rows,), headers=(_literal(headers),), density="compact",
                      hide_default_footer=True, items_per_page=-1, id="ltr-followup-table")
        html.Div(f"{{{{ {n.followup_recist} }}}}", classes="text-caption font-weight-bold",
                 style="white-space: pre-line", id="ltr-followup-recist")
        v3.VBtn(f"{{{{ {n.followup_shown} ? 'Back to the CT views' : 'Show both CTs side by side' }}}}",
                size="small", variant="tonal", id="ltr-followup-views", click=logic.followup.toggle_views)


def _input_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    n = typed.name
    _section("Input")
    html.Div("Seeds: click a button, then click in a slice view.", classes="text-caption")
    with html.Div(classes="d-flex flex-wrap ga-1"):
        for label, key in ((TUMOR, "tumor"), (RIGHT_LUNG, "right-lung"), (LEFT_LUNG, "left-lung")):
            v3.VBtn(f"Place {SEED_WORDS[label]} seed", size="small", id=f"ltr-place-{key}", disabled=(n.busy,),
                    color=(f"{n.placing} === '{label}' ? 'primary' : undefined",),
                    click=(logic.place_seed, f"['{label}']"))
    with html.Div(id="ltr-seeds", classes="text-caption"):
        html.Div("{{ seed.label }}: RAS {{ seed.ras }}, slice {{ seed.slice }}", v_for=f"seed in {n.seeds}", classes="ltr-seed")
    v3.VBtn("Clear seeds", size="x-small", variant="text", click=logic.clear_seeds, disabled=(n.busy,))


def _case_section(typed: TypedState[PanelState], cases: CaseLogic) -> None:
    """Open another case: upload a CT, or pick one of the server's --data folder."""
    n = typed.name
    idle = f"{n.busy} || {n.case_busy} || {n.finetune_busy} || {n.followup_busy} || {n.dicom_busy}"
    _section("Case")
    html.Div(f"{{{{ {n.case_name} }}}}", classes="text-body-2 font-weight-bold", id="ltr-case-name")
    html.Div(f"Upload a CT: a zipped DICOM folder, or an NRRD, NIfTI or MetaImage (.mha) file, up to "
             f"{{{{ {n.upload_limit_mb} }}}} MB.", classes="text-caption")
    # A plain form into a hidden frame: the browser streams the file over HTTP (not the
    # websocket), so that the server checks its size and type before reading it.
    with html.Form(action="upload", method="post", enctype="multipart/form-data", target="ltr-upload-frame",
                   id="ltr-upload-form"):
        html.Input(type="file", name="ct", accept=".zip,.nrrd,.nii,.nii.gz,.mha", id="ltr-upload",
                   disabled=(idle,), change="$event.target.form.requestSubmit(); $event.target.value = ''")
    html.Iframe(name="ltr-upload-frame", style="display: none")
    with html.Div(v_if=f"{n.data_cases}.length", classes="d-flex align-center ga-2 mt-1"):
        _select("Server's cases", n.data_case, [], "ltr-data-case", items_override=n.data_cases)
        v3.VBtn("Open", size="small", id="ltr-open-case", disabled=(idle,), click=cases.open_data_case)
    v3.VProgressLinear(v_if=n.case_busy, indeterminate=True, height=4, classes="mt-1")
    html.Div(f"{{{{ {n.case_message} }}}}", classes="text-caption", id="ltr-case-message")


def _lungs_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    n = typed.name
    _section("Lungs")
    _method_select(typed, "lungs", "ltr-lungs-method")
    v3.VBtn("Segment lungs", size="small", classes="mt-1", id="ltr-run-lungs", disabled=(n.busy,),
            click=(logic.start_stage, "['lungs']"))
    html.Div("Correct one lung on the axial slice with the editor, then:", classes="text-caption mt-2")
    _select("Lung to correct", n.correct_lung, [{"title": x, "value": x} for x in (RIGHT_LUNG, LEFT_LUNG)],
            "ltr-correct-lung")
    v3.VBtn(f"Re-propagate from slice {{{{ {n.axial_k} + 1 }}}}", size="small", classes="mt-1",
            id="ltr-repropagate", disabled=(n.busy,), click=(logic.start_stage, "['repropagate']"))


def _tumor_section(typed: TypedState[PanelState], logic: PanelLogic) -> None:
    n = typed.name
    _section("Tumour")
    _method_select(typed, "tumor", "ltr-tumor-method")
    v3.VBtn("Segment tumour", size="small", classes="mt-1", id="ltr-run-tumor", disabled=(n.busy,),
            click=(logic.start_stage, "['tumor']"))
    with html.Div(v_if=f"{n.candidates}.length", classes="text-caption mt-1", id="ltr-candidates"):
        html.Div("Candidates found without a tumour seed (best first; the volume is the candidate's, "
                 "not the segment's). The tumour segment was grown from candidate 1: check it in the "
                 "views, or seed another and segment the tumour again. " + SCORE_HELP)
        with html.Div(v_for=f"c in {n.candidates}", key="c.rank", classes="d-flex align-center ga-1 ltr-candidate"):
            html.Span("{{ c.rank }}. {{ c.volume_ml }} mL, score {{ c.score }}, at RAS {{ c.ras }}, slice {{ c.slice }}")
            v3.VBtn("Show", size="x-small", variant="text", classes="ltr-candidate-show",
                    click=(logic.show_candidate, "[c.rank - 1]"))
            v3.VBtn("Seed here", size="x-small", variant="tonal", classes="ltr-candidate-seed", disabled=(n.busy,),
                    click=(logic.seed_candidate, "[c.rank - 1]"))


def _results_section(typed: TypedState[PanelState]) -> None:
    n = typed.name
    _section("Results")
    v3.VDataTable(items=(n.volume_rows,), headers=(_literal(VOLUME_HEADERS),), density="compact",
                  hide_default_footer=True, id="ltr-volumes-table", items_per_page=-1)
    v3.VDataTable(v_if=f"{n.tumor_rows}.length", items=(n.tumor_rows,), headers=(n.tumor_headers,),
                  density="compact", hide_default_footer=True, id="ltr-tumors-table", items_per_page=-1)
    html.Div(f"{{{{ {n.volume_note} }}}}", v_if=n.volume_note, classes="text-caption", id="ltr-volume-note")
    html.Div(f"3D model: {{{{ {n.model} }}}}", v_if=n.model, classes="text-caption", id="ltr-model")
    v3.VCheckbox(v_if=n.has_heterogeneity, v_model=(n.show_heterogeneity,), density="compact",
                 hide_details=True, id="ltr-show-heterogeneity",
                 label="Show the tumour heterogeneity map over the slices")
