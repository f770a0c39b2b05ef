"""Strict conversion of parsed JSON/YAML data into (nested) frozen dataclasses.

Every config and spec in pas goes through ``from_data``: unknown keys, missing
keys and wrong types are errors that name the full key path (``spec.view.crop``,
``jobs/demo.yaml: data.backend``) and list the valid keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """``yaml.safe_load`` of a file; a missing file or bad YAML raises ``error`` naming the file."""
    import yaml

    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from exc


def from_data(tp: Any, data: Any, where: str, error: type[Exception]) -> Any:
    """``data`` converted to type ``tp``; raises ``error`` naming ``where`` (the key path)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise error(f"{where}: expected a mapping, got {data!r}")
        hints = typing.get_type_hints(tp)
        names = [f.name for f in dataclasses.fields(tp)]
        unknown = sorted(str(k) for k in set(data) - set(names))
        if unknown:
            raise error(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(names)}")
        required = [f.name for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise error(f"{where}: missing key(s) {', '.join(missing)}")
        return tp(**{k: from_data(hints[k], v, f"{where}.{k}", error) for k, v in data.items()})
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_data(inner, data, where, error)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(data, dict):
            raise error(f"{where}: expected a mapping, got {data!r}")
        return {from_data(key_type, k, f"{where}", error): from_data(value_type, v, f"{where}.{k}", error)
                for k, v in data.items()}
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise error(f"{where}: expected a list, got {data!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v, f"{where}[{i}]", error) for i, v in enumerate(data))
        if len(args) != len(data):
            raise error(f"{where}: expected {len(args)} values, got {len(data)}")
        return tuple(from_data(a, v, f"{where}[{i}]", error) for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise error(f"{where}: expected a number, got {data!r}")
        return float(data)
    if tp in (int, str, bool):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise error(f"{where}: expected {tp.__name__}, got {data!r}")
        return data
    if tp is typing.Any:
        return data
    raise error(f"{where}: unsupported field type {tp!r}")  # pragma: no cover - programming error
