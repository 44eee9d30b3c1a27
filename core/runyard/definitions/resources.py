"""Resources: connections and clients that ops share, with config and setup/teardown.

``@resource`` wraps a function of one ``context`` argument. If the function is a generator, code
before ``yield`` is setup, the yielded value is the resource, and code after it is teardown (run
even when the run fails). Any other object placed in ``resources={...}`` is used as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..errors import DefinitionError


@dataclass
class ResourceDefinition:
    fn: Callable[[Any], Any]
    config_model: type[BaseModel] | None = None
    description: str | None = None

    @property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.fn)


@dataclass
class InitResourceContext:
    """What a resource function receives."""

    config: Any
    log: Any
    run_id: str
    resource_key: str
    home: str = ""  # the instance home, e.g. for files kept next to it


def resource(fn: Callable[[Any], Any] | None = None, *, config: type[BaseModel] | None = None,
             description: str | None = None) -> Any:
    """Declare a resource. ``config`` is a pydantic model validated from run config
    ``resources: {<key>: {config: {...}}}``."""
    if config is not None and not (isinstance(config, type) and issubclass(config, BaseModel)):
        raise DefinitionError("@resource(config=...) must be a runyard.Config (pydantic) subclass")

    def decorate(func: Callable[[Any], Any]) -> ResourceDefinition:
        if len(inspect.signature(func).parameters) != 1:
            raise DefinitionError(f"resource function '{func.__name__}' must take exactly one "
                                  "argument (its init context)")
        return ResourceDefinition(func, config, description or inspect.getdoc(func))

    return decorate(fn) if fn is not None else decorate


class ResourceSet:
    """Resources initialised for one run (or one step process): attribute access, ordered teardown."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._generators: list[tuple[str, Any]] = []

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no resource '{key}' is available here; declare it in the op's "
                                 "required_resource_keys and in the job's resources") from None

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def init(self, key: str, definition: Any, config: Any, log: Any, run_id: str, home: str = "") -> None:
        if not isinstance(definition, ResourceDefinition):
            self._values[key] = definition
            return
        ctx = InitResourceContext(config=config, log=log, run_id=run_id, resource_key=key, home=home)
        if definition.is_generator:
            gen = definition.fn(ctx)
            try:
                self._values[key] = next(gen)
            except StopIteration:
                raise DefinitionError(f"resource '{key}' did not yield a value") from None
            self._generators.append((key, gen))
        else:
            self._values[key] = definition.fn(ctx)

    def teardown(self) -> list[tuple[str, BaseException]]:
        """Run teardowns in reverse order; return the errors instead of raising them."""
        errors = []
        while self._generators:
            key, gen = self._generators.pop()
            try:
                next(gen)
            except StopIteration:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append((key, exc))
        return errors
