"""Safe YAML loading that remembers where every key came from, so errors can name file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass
class YamlDocument:
    data: Any
    source: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path: tuple) -> int | None:
        """Line of the deepest known key on ``path``."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _collect_lines(node: Any, path: tuple, out: dict[tuple, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _collect_lines(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _collect_lines(item, path + (i,), out)


def load_yaml_text(text: str, source: str) -> YamlDocument:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{exc.context}; {problem}"
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return YamlDocument(data=data, source=source, lines=lines)


def load_yaml_file(path: str, *, missing_ok: bool = False) -> YamlDocument:
    if not os.path.exists(path):
        if missing_ok:
            return YamlDocument(data=None, source=path)
        raise ConfigError("file not found", source=path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
    return load_yaml_text(text, path)


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
