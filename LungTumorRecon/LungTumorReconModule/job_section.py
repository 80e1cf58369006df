"""What the Slicer panel's job sections share (fine-tuning, follow-up): Run and Cancel buttons,
a progress bar, a status line, and a Qt timer that polls the library's child job
(``OutputFolderJob``) until it ends. Not for clinical use."""

from __future__ import annotations

import traceback

import qt
import slicer
from slicer.i18n import tr as _


class JobSection:
    """A section that runs one child job at a time. A subclass calls :meth:`_addJobControls`
    while building its form, :meth:`_startJob` with a started job, and implements
    :meth:`_finished` (the job's outcome, on the GUI thread)."""

    POLL_MS = 500
    title = ""  # the section's words in its status line

    def _addJobControls(self, form, runText: str) -> None:
        self.job = None
        self.runButton = qt.QPushButton(runText)
        self.cancelButton = qt.QPushButton(_("Cancel"))
        self.cancelButton.enabled = False
        buttons = qt.QHBoxLayout()
        buttons.addWidget(self.runButton)
        buttons.addWidget(self.cancelButton)
        form.addRow(buttons)
        self.progressBar = qt.QProgressBar()
        form.addRow(self.progressBar)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.statusLabel.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)  # a path can be copied
        form.addRow(self.statusLabel)
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self.poll)
        self.cancelButton.connect("clicked()", self.onCancel)

    def _startJob(self, job) -> None:
        self.job = job
        self._setBusy(True)
        self.progressBar.value = 0
        self.statusLabel.text = _("{title}: starting").format(title=self.title)
        self.timer.start()

    def _setBusy(self, busy: bool) -> None:
        self.runButton.enabled = not busy
        self.cancelButton.enabled = busy

    def onCancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.poll()  # finish now: the child is gone

    def poll(self) -> None:
        job = self.job
        if job is None:
            return
        event = job.progress()
        self.progressBar.value = int(round(100 * (event.fraction or 0.0)))
        self.statusLabel.text = _("{title}: {message}").format(title=self.title, message=event.message)
        if job.running:
            return
        self.timer.stop()
        self.job = None
        self._setBusy(False)
        try:
            self._finished(job.finish())
        except Exception as exc:  # noqa: BLE001 - shown, and the panel stays usable
            self.statusLabel.text = _("{title} failed: {error}").format(title=self.title, error=exc)
            slicer.util.errorDisplay(str(exc), detailedText=traceback.format_exc())

    def _finished(self, outcome) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Kill a running job and remove its job folder (the module is closing)."""
        self.timer.stop()
        if self.job is not None:
            self.job.cleanup()
            self.job = None
