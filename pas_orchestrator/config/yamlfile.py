"""Reading config YAML: ``yaml.safe_load`` only, ``${VAR}`` from the environment, errors naming the file and key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pas_models.typed_data import brief, read_yaml
from pas_orchestrator.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(data: Any, where: str, environ: dict[str, str] | None = None) -> Any:
    """``data`` with every ``${VAR}`` in its strings replaced from the environment; unset variables
    are one ConfigError that names all of them, each with its key path."""
    env = os.environ if environ is None else environ
    unset: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in env:
                    unset.append((m.group(1), path))
                    return m.group(0)
                return env[m.group(1)]
            return _VAR.sub(sub, value)
        return value

    out = walk(data, "")
    if len(unset) == 1:
        name, path = unset[0]
        raise ConfigError(f"{where.rstrip(':')}: {path}: environment variable {name} is not set "
                          f"(export {name}=... or write the value in the file)")
    if unset:
        names = sorted({name for name, _ in unset})
        shown = ", ".join(f"{name} ({', '.join(sorted({p for n, p in unset if n == name}))})" for name in names)
        raise ConfigError(f"{where.rstrip(':')}: environment variable{'s' if len(names) > 1 else ''} not set: "
                          f"{shown}; export {' '.join(f'{n}=...' for n in names)} or write the values in the file")
    return out


def load_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file, env-expanded; errors say which file and why."""
    data = read_yaml(path, what, ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping (key: value lines), got {brief(data)}")
    return expand_env(data, str(path))


def require(ok: bool, where: str, message: str) -> None:
    """ConfigError ``where: message`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{where}: {message}")


def one_of(value: Any, choices: tuple[str, ...], where: str) -> None:
    require(value in choices, where, f"{value!r} is not one of {', '.join(choices)}")
