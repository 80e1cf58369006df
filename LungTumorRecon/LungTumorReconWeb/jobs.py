"""Following a panel section's child job (fine-tuning, follow-up) from the web app's event loop:
poll it, show its progress, and hand back how it ended. Not for clinical use."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable

from LungTumorReconLib.pipeline.events import ProgressEvent
from LungTumorReconLib.pipeline.session import Outcome

POLL_S = 0.5


async def follow_job(job, typed, show_progress: Callable[[ProgressEvent], None], labels: dict[str, str],
                     title: str) -> tuple[object | None, str, str]:
    """Poll ``job`` (an ``OutputFolderJob``) until its child ends; the UI stays live between polls.

    ``show_progress`` sets the section's state from each event (called inside ``typed.state``).
    Returns ``(outcome, message, error)``: the job's outcome (None when following it failed),
    its status line, and an error for the panel ('' when none; option names from ``labels``).
    """
    try:
        while job.running:
            await asyncio.sleep(POLL_S)
            event = job.progress()
            with typed.state:
                show_progress(event)
        outcome = job.finish()
    except Exception as exc:  # noqa: BLE001 - shown in the panel, which stays usable
        traceback.print_exc()
        job.cleanup()
        return None, f"{title}: failed", f"{type(exc).__name__}: {exc}"
    error = outcome.error.describe(labels) if outcome.status is Outcome.FAILED else ""
    return outcome, outcome.message, error
