"""Errors of talking to a code location server. All are :class:`runyard.errors.RunyardError`s, so
the CLI prints them as one clear message."""

from __future__ import annotations

from typing import Any

from ..errors import RunyardError


class CodeServerError(RunyardError):
    """The code server answered, but with an error (``payload`` is its JSON body, ``status`` the
    HTTP status)."""

    def __init__(self, message: str, *, address: str | None = None, status: int | None = None,
                 payload: Any = None):
        self.address = address
        self.status = status
        self.payload = payload
        super().__init__(message)


class CodeServerUnavailableError(CodeServerError):
    """No usable answer: nothing listens at the address, the server did not answer in time, or it
    answered something that is not the code server protocol (HTML, non-JSON, wrong shape)."""


class CodeLocationLoadError(CodeServerError):
    """The server is up but the location's definitions failed to import (HTTP 503).
    ``user_traceback`` is the user's traceback, which the CLI prints under the message."""

    def __init__(self, message: str, *, user_traceback: str | None = None, **kwargs: Any):
        self.user_traceback = user_traceback
        super().__init__(message, **kwargs)


class CodeServerNotFoundError(CodeServerError):
    """No job, schedule or sensor of that name in the location (HTTP 404). ``available`` lists the
    names the location has."""

    def __init__(self, message: str, *, available: list[str] | None = None, **kwargs: Any):
        self.available = list(available or [])
        super().__init__(message, **kwargs)
