"""The one YAML loader (instance file, workspace file, run config from ``-c``, the launchpad and
GraphQL ``runConfigYaml``) against hostile or broken documents: each gives one ConfigError naming the
file and line (and key where there is one), never a traceback, a hang or unbounded memory.

Needs: real subprocesses and a SQLite file per test home (the CLI cases).
"""

from __future__ import annotations

import time

import pytest

from runyard.errors import ConfigError
from runyard.instance import yaml_source
from runyard.instance.yaml_source import (
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    MAX_YAML_BYTES,
    load_yaml_file,
    load_yaml_text,
)

# 9 levels of 9 aliases each: 9**9 (387 million) nodes once expanded, 689 bytes of text.
BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\n"


def error_of(text: str, source: str = "cfg.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, source)
    return info.value


def test_billion_laughs_is_refused_quickly_naming_the_line():
    started = time.monotonic()
    err = error_of(BILLION_LAUGHS)
    assert time.monotonic() - started < 5
    assert err.source == "cfg.yaml" and err.line is not None
    assert "alias" in err.message and str(MAX_EXPANDED_NODES) in err.message.replace(",", "")


def test_alias_to_a_long_string_counts_its_text():
    anchor = "x" * 1_000_000
    text = f"big: &big {anchor}\ncopies: [{', '.join(['*big'] * 100)}]\n"
    err = error_of(text)
    assert "alias" in err.message and err.line == 2


def test_a_few_aliases_are_fine_and_keep_their_lines():
    doc = load_yaml_text("base: &b {x: 1}\nuse:\n  one: *b\n  two:\n    <<: *b\n    y: 2\n", "f.yaml")
    assert doc.data == {"base": {"x": 1}, "use": {"one": {"x": 1}, "two": {"x": 1, "y": 2}}}
    assert doc.line_of(("use", "one")) == 3
    assert doc.line_of(("use", "one", "x")) == 3  # inside an alias: the alias's line
    assert doc.line_of(("use", "two", "y")) == 6


def test_self_referencing_alias():
    for text in ("a: &a [*a]\n", "a: &a {b: *a}\n", "x: 1\nloop: &l\n  - 1\n  - *l\n"):
        err = error_of(text)
        assert "refers to itself" in err.message, text
        assert err.line is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 600, 5000])
def test_deep_nesting_flow_and_block(depth):
    flow = "a: " + "[" * depth + "]" * depth + "\n"
    block_depth = min(depth, 1000)  # indentation grows quadratically
    block = "".join(f"{' ' * i}k{i}:\n" for i in range(block_depth)) + " " * block_depth + "end: 1\n"
    for text in (flow, block):
        err = error_of(text)
        assert f"deeper than {MAX_DEPTH}" in err.message
        assert err.line is not None


def test_nesting_at_the_limit_is_fine():
    text = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert load_yaml_text(text, "f").data is not None


def test_depth_through_aliases_counts():
    # each anchor nests the previous one a level deeper: composed shallowly, expanded very deep
    lines = ["l0: &l0 [1]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, MAX_DEPTH + 5)]
    err = error_of("\n".join(lines) + "\n")
    assert f"deeper than {MAX_DEPTH}" in err.message


def test_huge_integer_names_line_and_says_quote_it():
    err = error_of("ops:\n  a:\n    n: " + "9" * 5000 + "\n")
    assert err.line == 3 and err.path == "ops.a.n"
    assert "digits" in err.message and "quote" in err.message
    assert "set_int_max_str_digits" not in str(err)
    assert len(str(err)) < 400


def test_document_size_limit():
    err = error_of("x: " + "a" * (MAX_YAML_BYTES + 1) + "\n")
    assert "larger than" in err.message


def test_dates_become_iso_strings_and_bad_dates_are_clear():
    # 2024-2-1 is no YAML date: it stays the string it is
    doc = load_yaml_text("start_date: 2024-02-01\nat: 2024-02-01 10:30:00\nshort: 2024-2-1\n", "f")
    assert doc.data == {"start_date": "2024-02-01", "at": "2024-02-01T10:30:00", "short": "2024-2-1"}
    err = error_of("ops:\n  a:\n    start_date: 2024-13-01\n")
    assert err.line == 3 and err.path == "ops.a.start_date"
    assert "2024-13-01" in err.message and "month" in err.message


def test_the_text_is_parsed_once(monkeypatch):
    import yaml

    def refuse(*args, **kwargs):
        raise AssertionError("a second, unlimited parse")

    monkeypatch.setattr(yaml, "safe_load", refuse)
    monkeypatch.setattr(yaml, "compose", refuse)
    monkeypatch.setattr(yaml, "load", refuse)
    assert load_yaml_text("a: {b: [1, 2]}\n", "f").data == {"a": {"b": [1, 2]}}


@pytest.mark.parametrize("content, fragment", [
    (b"storage:\n  sqlite: {}\nname: caf\xe9\n", "not UTF-8"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", "line 1"),
    (b"a: 1\nb: \x00\x01\x02\n", "line 2"),
])
def test_binary_and_non_utf8_files(tmp_path, content, fragment):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_yaml_file(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: 1\nb: 2\nname: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(str(path))
    assert info.value.line == 3


def test_files_that_are_not_regular_or_too_big(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as info:
        load_yaml_file("/dev/zero")
    assert "not a regular file" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_yaml_file(str(tmp_path))
    assert "not a regular file" in str(info.value)
    monkeypatch.setattr(yaml_source, "MAX_YAML_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 200 + "\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(str(big))
    assert "larger than" in str(info.value) and str(big) in str(info.value)


# ---- through the CLI: every file the CLI reads goes through the loader -------------------------------

def assert_clear(proc, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr
    assert "Traceback" not in err, err
    assert err.startswith("Error: ") and len(err) < 2000, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err


def test_cli_run_config_bomb_deep_and_bad_date(cli, sample_defs, tmp_path):
    cases = {
        "bomb.yaml": (BILLION_LAUGHS, "alias"),
        "deep.yaml": ("ops: " + "[" * 600 + "]" * 600 + "\n", "deeper than"),
        "date.yaml": ("ops:\n  wait:\n    config:\n      go_file: 2024-13-01\n", "line 4"),
        "int.yaml": ("ops:\n  wait:\n    config:\n      seconds: " + "1" * 5000 + "\n", "digits"),
        "loop.yaml": ("ops: &o\n  x: *o\n", "refers to itself"),
    }
    for name, (text, fragment) in cases.items():
        (tmp_path / name).write_text(text)
        started = time.monotonic()
        proc = cli("job", "execute", "-f", sample_defs, "-j", "waiting", "-c", tmp_path / name, timeout=30)
        assert_clear(proc, str(tmp_path / name), fragment)
        assert time.monotonic() - started < 20


def test_cli_run_config_date_reaches_the_op_as_from_the_web_ui(cli, sample_defs, tmp_path):
    (tmp_path / "date.yaml").write_text("ops:\n  wait:\n    config:\n      go_file: 2024-02-01\n")
    (tmp_path / "2024-02-01").write_text("")
    proc = cli("job", "execute", "-f", sample_defs, "-j", "waiting", "-c", tmp_path / "date.yaml")
    assert proc.returncode == 0, proc.stderr


def test_cli_config_from_dev_zero_and_a_directory(cli, sample_defs, tmp_path):
    for path in ("/dev/zero", str(tmp_path)):
        started = time.monotonic()
        proc = cli("job", "execute", "-f", sample_defs, "-j", "etl", "-c", path, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and path in proc.stderr, proc.stderr
        assert time.monotonic() - started < 20


def test_cli_instance_and_workspace_files_go_through_the_loader(cli, home, tmp_path, sample_defs):
    (home / "runyard.yaml").write_bytes(b"daemon:\n  lease_seconds: 10\nx: caf\xe9\n")
    assert_clear(cli("run", "list"), str(home / "runyard.yaml"), "line 3", "UTF-8")
    (home / "runyard.yaml").write_text(BILLION_LAUGHS)
    assert_clear(cli("run", "list"), str(home / "runyard.yaml"), "alias")
    (home / "runyard.yaml").unlink()
    ws = tmp_path / "workspace.yaml"
    ws.write_text("load_from:\n" + BILLION_LAUGHS.replace("a0:", "  - a0:").replace("\na", "\n    a"))
    assert_clear(cli("workspace", "list", "-w", ws), str(ws), "alias")


def test_text_that_came_from_undecodable_bytes():
    err = error_of("a: 1\nb: caf\udce9\n")
    assert err.line == 2 and "UTF-8" in err.message


def test_without_libyaml_the_limits_are_the_same(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml._yaml", None)  # what a PyYAML built without libyaml has
    monkeypatch.setattr(yaml_source, "_loader_cls", None)
    import yaml

    assert yaml_source._loader().__mro__[1] is yaml.SafeLoader
    assert "alias" in error_of(BILLION_LAUGHS).message
    assert f"deeper than {MAX_DEPTH}" in error_of("a: " + "[" * 5000 + "]" * 5000).message
    assert "refers to itself" in error_of("a: &a [*a]\n").message
    assert "digits" in error_of("n: " + "9" * 5000).message
    assert error_of("d: 2024-13-01\n").path == "d"
    assert error_of("a: 1\nb: \x00\n").line == 2
    assert load_yaml_text("d: 2024-02-01\n", "f").data == {"d": "2024-02-01"}
