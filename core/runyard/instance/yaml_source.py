"""The one YAML loader of runyard: safe loading that remembers where every key came from, so errors
can name file and line, within limits that keep a hostile document from costing more than a small
one.

Every YAML text runyard reads goes through :func:`load_yaml_text` (files through
:func:`load_yaml_file`): the instance file, the workspace file, run config from ``-c`` and from the
web UI (``runConfigYaml``). The limits (documented in docs/run-config.md, "Limits"):

- a document is at most :data:`MAX_YAML_BYTES`; a file must be a regular file (not ``/dev/zero``, a
  FIFO or a directory) and UTF-8;
- collections nest at most :data:`MAX_DEPTH` levels;
- counting every alias as a full copy of what it refers to, a document holds at most
  :data:`MAX_EXPANDED_NODES` nodes and :data:`MAX_EXPANDED_CHARS` characters of scalar text (this is
  what stops "billion laughs": aliases are cheap to parse, the copies they stand for are not);
- an alias may not refer to the collection it is in;
- integers have at most :data:`MAX_INT_DIGITS` digits (Python's own limit for decimal text).

Unquoted dates and times (``2024-02-01``, ``2024-02-01 10:30:00``) are read as ISO 8601 strings, not
``date`` objects: run config must survive JSON (to a code server, into storage) unchanged, and a
config field typed ``date``/``datetime`` parses the string. An impossible date (``2024-13-01``) is
an error naming its line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_EXPANDED_NODES = 1_000_000
MAX_EXPANDED_CHARS = 16 * 1024 * 1024
MAX_INT_DIGITS = 4300


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


class _LimitError(Exception):
    """A limit was passed at ``mark``; turned into a ConfigError by :func:`load_yaml_text`."""

    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message = message
        self.mark = mark


_loader_cls: type | None = None


def _loader() -> type:
    """The SafeLoader subclass with the limits (built on first use: importing yaml costs ~20 ms)."""
    global _loader_cls
    if _loader_cls is not None:
        return _loader_cls
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    try:  # libyaml's scanner and parser, about ten times faster; composing stays here, with the limits
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml
        CParser = None

    class LimitedSafeLoader(*((Composer, CParser, SafeConstructor, Resolver) if CParser is not None
                              else (yaml.SafeLoader,))):
        def __init__(self, stream: str):
            if CParser is None:
                yaml.SafeLoader.__init__(self, stream)
            else:
                CParser.__init__(self, stream)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # The composer recurses once per level: stop long before Python's recursion limit.
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _LimitError(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_yaml_int(self, node: Any) -> Any:
            digits = sum(c.isdigit() for c in node.value)
            if digits > MAX_INT_DIGITS:
                raise yaml.constructor.ConstructorError(
                    None, None, f"integer of {digits} digits is too long (at most {MAX_INT_DIGITS}); "
                    "quote it to make it a string", node.start_mark)
            return super().construct_yaml_int(node)

        def construct_yaml_timestamp(self, node: Any) -> Any:
            try:
                value = super().construct_yaml_timestamp(node)
            except (ValueError, OverflowError) as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{node.value}' is not a valid date or time ({exc}); quote it to make it "
                    "a string", node.start_mark) from None
            return value.isoformat()

    LimitedSafeLoader.add_constructor("tag:yaml.org,2002:int", LimitedSafeLoader.construct_yaml_int)
    LimitedSafeLoader.add_constructor("tag:yaml.org,2002:timestamp", LimitedSafeLoader.construct_yaml_timestamp)
    _loader_cls = LimitedSafeLoader
    return _loader_cls


def _children(node: Any) -> list:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _check_expansion(root: Any) -> None:
    """Refuse a node graph whose alias-expanded tree is too big or too deep, or that contains
    itself. Aliases make the composed graph a DAG (a cycle for a self-reference); this walks each
    node once, without recursion, and adds up what its expansion would be."""
    import yaml

    totals: dict[int, tuple[int, int, int]] = {}  # id(node) -> (nodes, scalar chars, height)
    entered: set[int] = set()  # the nodes on the current path
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            entered.discard(key)
            nodes, chars, height = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0
            for child in _children(node):
                n, c, h = totals[id(child)]
                nodes, chars, height = nodes + n, chars + c, max(height, h)
            height += 1
            if height > MAX_DEPTH:
                raise _LimitError(f"nested deeper than {MAX_DEPTH} levels (counting what aliases refer to)",
                                  node.start_mark)
            if nodes > MAX_EXPANDED_NODES:
                raise _LimitError(f"aliases expand this document to more than {MAX_EXPANDED_NODES:,} nodes",
                                  node.start_mark)
            if chars > MAX_EXPANDED_CHARS:
                raise _LimitError(f"aliases expand this document to more than {MAX_EXPANDED_CHARS:,} "
                                  "characters of text", node.start_mark)
            totals[key] = (nodes, chars, height)
            continue
        if key in totals:
            continue
        if key in entered:
            raise _LimitError("an alias refers to itself (a collection may not contain itself)",
                              node.start_mark)
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _collect_lines(node: Any, path: tuple, out: dict[tuple, int], seen: set[int]) -> None:
    """Record the line of every key and item; what an alias refers to is not walked again (a key
    inside it is reported at the alias's line)."""
    import yaml

    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _collect_lines(value_node, path + (key,), out, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _collect_lines(item, path + (i,), out, seen)


def _key_path_at(node: Any, line: int, column: int) -> tuple:
    """The key path of the innermost key whose value starts at (line, column), for messages."""
    import yaml

    path: tuple = ()
    while True:
        found = None
        pairs = (node.value if isinstance(node, yaml.MappingNode)
                 else enumerate(node.value) if isinstance(node, yaml.SequenceNode) else ())
        for key, value in pairs:
            key = key.value if isinstance(key, yaml.ScalarNode) else key
            if not isinstance(key, (str, int)):
                continue
            start, end = value.start_mark, value.end_mark
            if (start.line, start.column) <= (line, column) <= (end.line, end.column):
                found = (key, value)
                break
        if found is None:
            return path
        path, node = path + (found[0],), found[1]
        if (node.start_mark.line, node.start_mark.column) == (line, column):
            return path


def _format_marked(exc: Any) -> tuple[str, int | None]:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or str(exc)
    if exc.context:
        problem = f"{exc.context}; {problem}"
    return problem, (mark.line + 1 if mark else None)


def load_yaml_text(text: str, source: str) -> YamlDocument:
    """Parse ``text`` (named ``source`` in errors) once, within the limits above."""
    import yaml

    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"the document is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB", source=source)
    loader = None
    node = None
    try:
        loader = _loader()(text)  # the reader refuses non-printable characters here
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None, source=source)
        _check_expansion(node)
        data = loader.construct_document(node)
    except _LimitError as exc:
        line = exc.mark.line + 1 if exc.mark else None
        path = _key_path_at(node, exc.mark.line, exc.mark.column) if node is not None and exc.mark else ()
        raise ConfigError(exc.message, source=source, line=line, path=format_path(path) or None) from None
    except yaml.constructor.ConstructorError as exc:
        problem, line = _format_marked(exc)
        mark = exc.problem_mark
        path = _key_path_at(node, mark.line, mark.column) if node is not None and mark else ()
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line,
                          path=format_path(path) or None) from None
    except yaml.MarkedYAMLError as exc:
        problem, line = _format_marked(exc)
        if line is not None:  # libyaml marks "unexpected end" one line past the last one
            line = min(line, text.count("\n") + 1)
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000) met while scanning ahead
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", source=source, line=line) from None
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise ConfigError(f"invalid YAML: character {exc.character!r} is not allowed (binary content?)",
                          source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from None
    except UnicodeEncodeError as exc:  # text that came from bytes that were not UTF-8 (lone surrogates)
        raise ConfigError("invalid YAML: text that is not UTF-8", source=source,
                          line=text.count("\n", 0, exc.start) + 1) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[tuple, int] = {}
    _collect_lines(node, (), lines, set())
    return YamlDocument(data=data, source=source, lines=lines)


def read_text_file(path: str, *, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_YAML_BYTES`, or a ConfigError naming
    it (never reads more than the limit: ``-c /dev/zero`` is refused, not read forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("not a regular file: give a YAML file, not a device, FIFO or directory",
                              source=path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"the {what} is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB", source=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): save the "
                          f"{what} as UTF-8", source=path, line=line) from None


def load_yaml_file(path: str, *, missing_ok: bool = False) -> YamlDocument:
    if not os.path.exists(path):
        if missing_ok:
            return YamlDocument(data=None, source=path)
        raise ConfigError("file not found", source=path)
    return load_yaml_text(read_text_file(path), path)


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
