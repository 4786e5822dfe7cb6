"""Typed errors with a human title. The CLI prints one line and exits 2; the TUI notifies."""

from __future__ import annotations


class SwtuiError(Exception):
    """Base of every error a user may see. `str(err)` is the one-line message."""

    title = "Error"
    exit_code = 2


class UserInputError(SwtuiError):
    title = "Invalid input"


class ModelLoadError(SwtuiError):
    title = "Could not load the model"


class UnsupportedArchitecture(SwtuiError):
    title = "Unsupported architecture"


class EditError(SwtuiError):
    title = "Edit refused"


class QuantizationError(SwtuiError):
    title = "Quantization failed"


class SnapshotError(SwtuiError):
    title = "Snapshot error"


class Cancelled(SwtuiError):
    title = "Cancelled"
    exit_code = 130



def check_cancel(cancel, what: str = "cancelled") -> None:
    """The one cancel check: raise Cancelled(what) once the engine's cancel token (a
    threading.Event, or None for work nobody can cancel) is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(what)
