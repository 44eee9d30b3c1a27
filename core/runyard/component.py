"""What every pluggable component shares: a registered name, a typed config model, a constructor
from validated config, and capability flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class EmptyConfig(BaseModel):
    """Config model of a component that takes no config."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ComponentContext:
    """Given to ``from_config``: where the instance lives. New fields may be added; never removed."""

    home: str
    instance_file: str | None = None
    #: the name the component was selected by: its registered name, or ``module.Class``
    name: str = ""


class Component:
    #: The name this component was selected by (see :attr:`ComponentContext.name`). Set on the built
    #: instance by :func:`build_component`, never on the class: one class may be registered under
    #: several names.
    name: str = ""
    config_model: ClassVar[type[BaseModel]] = EmptyConfig

    @classmethod
    def from_config(cls, config: Any, context: ComponentContext) -> Component:
        """Build the component from its validated config (an instance of ``config_model``)."""
        return cls(config)  # type: ignore[call-arg]

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.config_model()


def build_component(cls: type[Component], config: Any, context: ComponentContext) -> Component:
    """``cls.from_config(config, context)``, named ``context.name``: how runyard builds every component."""
    component = cls.from_config(config, context)
    component.name = context.name or f"{cls.__module__}.{cls.__qualname__}"
    return component
