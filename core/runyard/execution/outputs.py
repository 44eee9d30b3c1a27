"""From what an op body produced to its outputs: :func:`op_result_values`.

The step runner and direct calls of an op (``my_op(ctx, x)`` outside a job) both go through it, so
an op's outputs mean the same wherever it runs. What an op body may hand back:

* a plain value: the value of its single output (an op with several outputs returns a tuple, one
  item per output in declaration order);
* ``Output(value, name)`` (or a tuple whose items are values or ``Output``\\ s in declaration order);
* a list of ``DynamicOutput``\\ s for a single :class:`~runyard.definitions.outputs.DynamicOut`;
* a generator yielding ``Output`` and ``DynamicOutput`` objects (consumed here, to the end).

An output declared ``Out(is_required=False)`` may be left out: a generator does not yield it, or a
``return`` gives ``None`` for it (to produce the value ``None``, return ``Output(None, name)``).
A generator that yields nothing for a required output whose type is ``None`` (an output that only
orders steps) produces it implicitly.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions.outputs import DynamicOutput, Output, is_valid_mapping_key
from ..definitions.types import describe_type, type_matches
from ..errors import RunyardError

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.op import OpDefinition


class StepOutputError(RunyardError):
    """What an op body produced does not match its declared outputs (a missing required output, an
    unknown output name, an output produced twice, a bad or repeated mapping key, a wrong type)."""


@dataclass(frozen=True)
class ProducedOutput:
    """One produced value: of output ``output_name``; ``mapping_key`` is set for a dynamic output."""

    output_name: str
    value: Any
    mapping_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def op_result_values(op: OpDefinition, result: Any) -> list[ProducedOutput]:
    """The outputs ``op`` produced when its body returned (or yielded, for a generator) ``result``,
    in production order. Raises :class:`StepOutputError` naming the op and output when the result
    does not match the op's outputs; an exception the generator raises goes through unchanged."""
    outs = op.outs
    if inspect.isgenerator(result):
        return _check(op, [_yielded(op, item) for item in result], generator=True)
    if isinstance(result, (Output, DynamicOutput)):
        return _check(op, [_yielded(op, result)])
    if len(outs) == 1:
        (name, out_def), = outs.items()
        if out_def.is_dynamic:
            if isinstance(result, (list, tuple)) and all(isinstance(i, DynamicOutput) for i in result):
                return _check(op, [_yielded(op, item) for item in result])
            if result is None and not out_def.is_required:
                return []
            raise StepOutputError(
                f"op '{op.name}' output '{name}' is a DynamicOut: yield DynamicOutput(value, mapping_key=...) "
                f"objects (or return a list of them), not a {type(result).__name__}")
        return _check(op, _returned(out_def, name, result))
    if not isinstance(result, tuple) or len(result) != len(outs):
        raise StepOutputError(f"op '{op.name}' declares {len(outs)} outputs ({', '.join(outs)}) and must "
                              f"return a tuple of that length (or yield Output objects), got "
                              f"{_describe(result)}")
    produced: list[ProducedOutput] = []
    for (name, out_def), item in zip(outs.items(), result, strict=True):
        if isinstance(item, Output):
            if item.output_name != name:
                raise StepOutputError(f"op '{op.name}' returned Output '{item.output_name}' in the place of "
                                      f"output '{name}': a returned tuple lists outputs in declaration order "
                                      f"({', '.join(outs)})")
            produced.append(_yielded(op, item))
        elif out_def.is_dynamic:
            if isinstance(item, (list, tuple)) and all(isinstance(i, DynamicOutput) for i in item):
                produced.extend(_yielded(op, i) for i in item)
            elif not (item is None and not out_def.is_required):
                raise StepOutputError(f"op '{op.name}' output '{name}' is a DynamicOut: give it a list of "
                                      f"DynamicOutput objects, not a {type(item).__name__}")
        else:
            produced.extend(_returned(out_def, name, item))
    return _check(op, produced)


def _describe(result: Any) -> str:
    if isinstance(result, tuple):
        return f"a tuple of {len(result)}"
    return "None" if result is None else f"a {type(result).__name__}"


def _returned(out_def: Any, name: str, value: Any) -> list[ProducedOutput]:
    if value is None and not out_def.is_required:
        return []  # an optional output given None by a return: not produced
    return [ProducedOutput(name, value)]


def _yielded(op: OpDefinition, item: Any) -> ProducedOutput:
    if isinstance(item, DynamicOutput):
        out_def = op.outs.get(item.output_name)
        if out_def is not None and not out_def.is_dynamic:
            raise StepOutputError(f"op '{op.name}' yielded a DynamicOutput for output '{item.output_name}', "
                                  "which is not a DynamicOut: yield Output(value, name) for it")
        if not is_valid_mapping_key(item.mapping_key):
            raise StepOutputError(f"op '{op.name}' output '{item.output_name}': mapping key "
                                  f"{item.mapping_key!r} is not valid: use letters, digits and _ only")
        return ProducedOutput(item.output_name, item.value, item.mapping_key, dict(item.metadata or {}))
    if isinstance(item, Output):
        out_def = op.outs.get(item.output_name)
        if out_def is not None and out_def.is_dynamic:
            raise StepOutputError(f"op '{op.name}' output '{item.output_name}' is a DynamicOut: yield "
                                  "DynamicOutput(value, mapping_key=...) for it, not Output")
        return ProducedOutput(item.output_name, item.value, None, dict(item.metadata or {}))
    raise StepOutputError(f"op '{op.name}' yielded a {type(item).__name__}; a generator op yields Output "
                          "or DynamicOutput objects")


def _check(op: OpDefinition, produced: list[ProducedOutput], *, generator: bool = False) -> list[ProducedOutput]:
    seen: dict[str, set[str] | None] = {}
    for item in produced:
        name = item.output_name
        out_def = op.outs.get(name)
        if out_def is None:
            raise StepOutputError(f"op '{op.name}' produced output '{name}', which it does not declare "
                                  f"(outputs: {', '.join(op.outs)})")
        if item.mapping_key is None:
            if name in seen:
                raise StepOutputError(f"op '{op.name}' produced output '{name}' twice")
            seen[name] = None
        else:
            keys = seen.setdefault(name, set())
            assert keys is not None
            if item.mapping_key in keys:
                raise StepOutputError(f"op '{op.name}' output '{name}': mapping key '{item.mapping_key}' was "
                                      "produced twice (mapping keys must be unique within an output)")
            keys.add(item.mapping_key)
        if not type_matches(item.value, out_def.type):
            where = f" (mapping key '{item.mapping_key}')" if item.mapping_key is not None else ""
            raise StepOutputError(f"op '{op.name}' output '{name}'{where} must be {describe_type(out_def.type)}, "
                                  f"got {type(item.value).__name__}")
    missing = []
    for name, out_def in op.outs.items():
        if name in seen or not out_def.is_required:
            continue
        if generator and out_def.is_nothing and not out_def.is_dynamic:
            produced.append(ProducedOutput(name, None))  # nothing to yield for an ordering-only output
            continue
        missing.append(name)
    if missing:
        what = "yield" if generator else "return"
        raise StepOutputError(f"op '{op.name}' did not {what} required output(s) {', '.join(missing)} "
                              "(declare Out(is_required=False) for an output that may be left out)")
    return produced


def produced_summary(produced: list[ProducedOutput]) -> dict[str, list[str] | None]:
    """``{output name: None (produced once) | [mapping keys in production order]}``: what
    ``StepOutcome.data["outputs"]`` carries."""
    summary: dict[str, list[str] | None] = {}
    for item in produced:
        if item.mapping_key is None:
            summary[item.output_name] = None
        else:
            keys = summary.setdefault(item.output_name, [])
            assert keys is not None
            keys.append(item.mapping_key)
    return summary
