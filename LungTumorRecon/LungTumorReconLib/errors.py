"""Errors that the front ends turn into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class LungTumorReconError(Exception):
    """Base class for errors caused by the user's input or choices (exit code 2)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(LungTumorReconError):
    """The input (CT, seeds, mask, output folder) cannot be used."""


class UnavailableError(LungTumorReconError):
    """A method, device or option is not available here."""


class InsufficientMemoryError(LungTumorReconError):
    """The run would need more memory than the machine has free; refused before computing."""
