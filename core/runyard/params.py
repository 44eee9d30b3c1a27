"""Click parameter types for runyard's command lines and those plugins add: every number has
bounds and refuses nan/inf, text must be text (docs/cli.md, "Bad input")."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """A float range that refuses ``nan`` and ``inf`` too: nan passes every comparison a range makes
    (``nan > 0`` and ``nan < 10`` are both false), and inf overflows the timeouts it would set."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


#: seconds for a timeout or interval option: more than 0, at most a day
SECONDS = FiniteFloatRange(min=0, max=86400, min_open=True)
PORT = click.IntRange(0, 65535)


def _is_text(value: str) -> bool:
    """Valid UTF-8 (arguments that were not arrive as lone surrogates) without control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()


class RunIdType(click.ParamType):
    """A run id: printable UTF-8 text of at most 64 characters (what storage keys hold)."""

    name = "run_id"
    MAX_LENGTH = 64

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if not _is_text(value):
            self.fail(f"{ascii(value)} is not a run id: run ids are printable UTF-8 text", param, ctx)
        if not value or len(value) > self.MAX_LENGTH or any(c.isspace() for c in value):
            self.fail(f"{value[:80]!r} is not a run id: 1 to {self.MAX_LENGTH} characters, no spaces",
                      param, ctx)
        return value


RUN_ID = RunIdType()

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class HostType(click.ParamType):
    """An interface to listen on: an IPv4 or IPv6 address or a host name (RFC 1123)."""

    name = "host"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            ipaddress.ip_address(candidate)
            return candidate
        except ValueError:
            pass
        labels = candidate.removesuffix(".").split(".")
        if (_is_text(candidate) and len(candidate) <= 253 and all(_HOSTNAME_LABEL.match(la) for la in labels)
                and not all(la.isdigit() for la in labels)):  # 300.1.2.3 is a bad address, not a name
            return candidate
        self.fail(f"{ascii(value)} is not an IP address or host name", param, ctx)


HOST = HostType()
