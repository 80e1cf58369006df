"""Errors that the front ends turn into a one-line message (exit code 2 on the command line).

An error says what failed as data: the file (``path``) and the option (``option``, a field of
:class:`~LungTumorReconLib.pipeline.options.PipelineOptions`). Each front end names the option
its own way (the CLI by its flag, a panel by its control's label) through :meth:`describe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class LungTumorReconError(Exception):
    """Base class for errors caused by the user's input or choices (exit code 2).

    Args:
        message: what is wrong, in words; it names no command-line flag.
        path: the file or folder concerned, if any.
        option: the option concerned, as a ``PipelineOptions`` field name (e.g. ``"weights"``).
    """

    def __init__(self, message: str, path: str | Path | None = None, option: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.option = option
        super().__init__(self.describe())

    def describe(self, option_names: Mapping[str, str] | None = None) -> str:
        """The one-line message, with the option named as ``option_names`` names it (else in words)."""
        parts = []
        if self.option is not None:
            if option_names is None:
                from LungTumorReconLib.pipeline.options import OPTION_LABELS

                option_names = OPTION_LABELS
            parts.append(option_names.get(self.option, self.option.replace("_", " ")))
        if self.path is not None:
            parts.append(self.path)
        return ": ".join([*parts, self.message])

    def as_dict(self) -> dict:
        """What crosses a process boundary (the job's child to its front end)."""
        return {"kind": type(self).__name__, "message": self.message, "path": self.path, "option": self.option}

    @staticmethod
    def from_dict(data: Mapping) -> "LungTumorReconError":
        kind = {c.__name__: c for c in (InputError, UnavailableError, InsufficientMemoryError)}.get(
            str(data.get("kind")), LungTumorReconError)
        return kind(str(data["message"]), data.get("path"), data.get("option"))


class InputError(LungTumorReconError):
    """The input (CT, seeds, mask, output folder) cannot be used."""


class UnavailableError(LungTumorReconError):
    """A method, device or option is not available here."""


class InsufficientMemoryError(LungTumorReconError):
    """The run would need more memory than the machine has free; refused before computing."""
