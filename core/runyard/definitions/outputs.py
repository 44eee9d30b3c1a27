"""What an op body hands back besides plain return values: :class:`Output` (a value for one named
output, with metadata), :class:`DynamicOutput` (one of the many values of a :class:`DynamicOut`,
with its mapping key) and :class:`DynamicOut` itself.

An op may ``return`` a value (or a tuple, one per output), ``return Output(...)``, or be a generator
that ``yield``\\ s ``Output`` / ``DynamicOutput`` objects; outputs declared ``Out(is_required=False)``
may be left out, and what is downstream of an output that was not produced is skipped (see
:mod:`runyard.execution.outputs`, which turns what an op body produced into its outputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .op import DEFAULT_OUTPUT, Out

#: what a mapping key may hold: it becomes part of a step key (``op[key]``), a file name and a URL
MAPPING_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class DynamicOut(Out):
    """An output that produces any number of values at run time, each a :class:`DynamicOutput` with
    its own mapping key. In a job body, ``handle.map(op)`` runs ``op`` once per value (steps keyed
    ``op[mapping_key]``) and ``handle.collect()`` fans the values back in as one list.

    Like any output it is required by default (the op must yield at least one value for it);
    ``DynamicOut(is_required=False)`` lets it yield none, and then no mapped step runs."""

    @property
    def is_dynamic(self) -> bool:
        return True


@dataclass(frozen=True)
class Output:
    """The value of output ``output_name`` (an op's single output is ``"result"``) and metadata
    recorded with it on the ``HANDLED_OUTPUT`` event."""

    value: Any
    output_name: str = DEFAULT_OUTPUT
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DynamicOutput:
    """One value of the :class:`DynamicOut` ``output_name``; ``mapping_key`` (letters, digits and
    ``_``, unique within the output) names the mapped steps that receive it: ``op[mapping_key]``."""

    value: Any
    mapping_key: str
    output_name: str = DEFAULT_OUTPUT
    metadata: dict[str, Any] = field(default_factory=dict)


def is_valid_mapping_key(key: Any) -> bool:
    return isinstance(key, str) and MAPPING_KEY_PATTERN.match(key) is not None
