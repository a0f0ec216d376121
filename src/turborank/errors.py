"""Named error types. Each says what went wrong and what to do next; the server maps them to HTTP once."""

from __future__ import annotations

import math


class TurborankError(Exception):
    """Base class of every error turborank raises on purpose."""


class CheckpointError(TurborankError):
    """A checkpoint is missing, unreadable, or does not match the model it claims to be."""


class ModelNotFoundError(CheckpointError):
    """Neither a local directory nor a reachable/cached hub repository holds the model."""


class InputError(TurborankError, ValueError):
    """The caller's input is unusable (empty query, no documents, wrong type, bad option)."""


class BackendError(TurborankError):
    """Inference itself failed (NaN scores, device error). Not the caller's fault."""


def require(name: str, value: object, valid: bool, what: str) -> None:
    """Raise ``InputError("<name> must be <what>, got <value>")`` unless ``valid``: one wording for every
    setting a command line or config checks before it starts long work."""
    if not valid:
        raise InputError(f"{name} must be {what}, got {value!r}")


def is_whole(value: object) -> bool:
    """An int that is not a bool (``True`` is an int to Python, never a count to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_positive(value: object, name: str) -> None:
    """Refuse anything but None or an integer >= 1 (a count, a size or a thread number), naming it."""
    require(
        name, value, value is None or (is_whole(value) and value >= 1), "a positive integer (>= 1) or None"
    )
