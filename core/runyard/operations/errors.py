"""Refusals of :mod:`runyard.operations`, by kind. All are :class:`~runyard.errors.RunyardError`, so
the CLI prints them as one message; the web UI maps each kind to a GraphQL error code."""

from __future__ import annotations

from ..errors import RunyardError


class OperationError(RunyardError):
    """A request an operation refuses as invalid (bad argument, wrong state)."""


class NotFoundError(OperationError):
    """No such code location, job, schedule or sensor."""


class UnavailableError(OperationError):
    """A code location that is not loaded or that could not answer."""
