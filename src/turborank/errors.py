"""Named error types. Each says what went wrong and what to do next; the server maps them to HTTP once."""

from __future__ import annotations


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
