"""Strict conversion of parsed JSON/YAML data into (nested) frozen dataclasses.

Every config and spec in pas goes through ``from_data``: unknown keys, missing
keys and wrong types are errors that name the full key path (``spec.view.crop``,
``jobs/demo.yaml: data.backend``) and list the valid keys.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20  # a config file is a page of keys; a larger one is a mistake (or an attack)
MAX_DEPTH = 64  # nesting levels of mappings/lists
MAX_VALUES = 100_000  # values after every alias is expanded (a "billion laughs" file expands to 10^9)


def load_json(path: str | Path, error: type[Exception]) -> Any:
    """A result file's JSON; one line naming the file when it cannot be read or is not JSON (``error``)."""
    import json

    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read ({exc.__class__.__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """``yaml.safe_load`` of a config file, hardened: every failure raises ``error`` with one line that
    names the file. Refused: a missing file, more than 1 MiB, bytes that are not UTF-8, nesting deeper than
    64 levels, more than 100,000 values once aliases are expanded, a key given twice in one mapping (both
    line numbers), and YAML syntax errors (FFmpeg-style multi-line messages are joined)."""
    import yaml

    if not path.is_file():
        raise error(f"{path}: {what} not found")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise error(f"{path}: {size / 2**20:.1f} MiB is too large for a {what} (at most 1 MiB)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
                    "save the file as UTF-8") from None
    loader = None
    try:
        loader = _loader_class()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise error(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's error in one short line: where and what (its message spans several lines with a snippet)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        return clip(" ".join(str(exc).replace('in "<unicode string>", ', "").split()), 200)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return clip(f"{where}{problem}" + (f", {context}" if context else ""), 200)


class _Refused(Exception):
    """A YAML document pas will not read (depth, size, duplicate keys)."""


@functools.cache
def _loader_class() -> type:
    import yaml

    class GuardedLoader(yaml.SafeLoader):
        """SafeLoader whose recursive composer stops at MAX_DEPTH (instead of a RecursionError)."""

        depth = 0

        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            self.depth += 1
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return GuardedLoader


def _check_nodes(root: Any) -> None:
    """Duplicate keys (with both lines and the key path) and the expanded size, without expanding:
    an alias is the same node object, so sizes are memoised per node (linear in the file)."""
    import yaml

    sizes: dict[int, int] = {}
    seen_dups: set[int] = set()
    stack: list[tuple[Any, str, bool]] = [(root, "", False)]
    while stack:  # iterative post-order: (node, key path, children done)
        node, where, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [(v, _join(where, k.value if isinstance(k, yaml.ScalarNode) else "?")) for k, v in node.value]
            children += [(k, where) for k, _ in node.value]
            if id(node) not in seen_dups:
                seen_dups.add(id(node))
                first: dict[str, int] = {}
                for k, _ in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                        if k.value in first:
                            raise _Refused(f"{_join(where, k.value)}: key given twice (lines {first[k.value]} and "
                                           f"{k.start_mark.line + 1}); keep one")
                        first[k.value] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            children = [(v, f"{where}[{i}]") for i, v in enumerate(node.value)]
        else:
            sizes[id(node)] = 1
            continue
        if done:
            total = 1 + sum(sizes[id(c)] for c, _ in children)
            if total > MAX_VALUES:
                top = where.split("[")[0].split(".")[0] or "the document"
                raise _Refused(f"{top}: expands to more than {MAX_VALUES:,} values (aliases of aliases: "
                               "a 'billion laughs' file?)")
            sizes[id(node)] = total
        else:
            stack.append((node, where, True))
            stack.extend((c, w, False) for c, w in children if id(c) not in sizes)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def key_at(where: str, key: str) -> str:
    """The location of ``key`` under ``where``: ``FILE:`` + ``k`` -> ``FILE: k``; ``FILE: a`` + ``k`` ->
    ``FILE: a.k``; ``spec`` + ``k`` -> ``spec.k``. Messages then read ``FILE: KEY.PATH: message``."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def at(where: str, message: str) -> str:
    """``where: message`` (a location ending in ':' is not given a second one)."""
    return f"{where.rstrip(':')}: {message}"


def brief(value: Any, limit: int = 80) -> str:
    """repr(value), cut to ``limit`` characters: an error line never carries a whole file."""
    return clip(repr(value), limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 24] + f"... ({len(text):,} characters)"


def from_data(tp: Any, data: Any, where: str, error: type[Exception]) -> Any:
    """``data`` converted to type ``tp``; raises ``error`` naming ``where`` (the key path)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise error(at(where, f"expected a mapping, got {brief(data)}"))
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        unknown = sorted(str(k) for k in set(data) - set(names))
        if unknown:
            raise error(at(where, f"unknown key(s) {clip(', '.join(unknown), 200)}; valid keys: {', '.join(names)}"))
        required = [f.name for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise error(at(where, f"missing key(s) {', '.join(missing)}"))
        return tp(**{k: from_data(hints[k], v, key_at(where, k), error) for k, v in data.items()})
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_data(inner, data, where, error)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(data, dict):
            raise error(at(where, f"expected a mapping, got {brief(data)}"))
        return {from_data(key_type, k, where, error): from_data(value_type, v, key_at(where, str(k)), error)
                for k, v in data.items()}
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise error(at(where, f"expected a list, got {brief(data)}"))
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v, f"{where}[{i}]", error) for i, v in enumerate(data))
        if len(args) != len(data):
            raise error(at(where, f"expected {len(args)} values, got {len(data)}"))
        return tuple(from_data(a, v, f"{where}[{i}]", error) for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise error(at(where, f"expected a number, got {brief(data)}"))
        return float(data)
    if tp in (int, str, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise error(at(where, f"expected {tp.__name__}, got {brief(data)}"))
        return data
    if tp is typing.Any:
        return data
    raise error(at(where, f"unsupported field type {tp!r}"))  # pragma: no cover - programming error
