"""Reading config YAML: ``yaml.safe_load`` only, ``${VAR}`` from the environment, errors naming the file and key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pas_models.strict import read_yaml
from pas_orchestrator.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(data: Any, where: str, environ: dict[str, str] | None = None) -> Any:
    """``data`` with every ``${VAR}`` in its strings replaced from the environment; an unset
    variable is a ConfigError naming the key path."""
    env = os.environ if environ is None else environ
    if isinstance(data, dict):
        return {k: expand_env(v, f"{where}.{k}", env) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, f"{where}[{i}]", env) for i, v in enumerate(data)]
    if isinstance(data, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(f"{where}: environment variable {m.group(1)} is not set "
                                  f"(export {m.group(1)}=... or write the value in the file)")
            return env[m.group(1)]
        return _VAR.sub(sub, data)
    return data


def load_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file, env-expanded; errors say which file and why."""
    data = read_yaml(path, what, ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping (key: value lines), got {type(data).__name__}")
    return expand_env(data, str(path))


def require(ok: bool, where: str, message: str) -> None:
    """ConfigError ``where: message`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{where}: {message}")


def one_of(value: Any, choices: tuple[str, ...], where: str) -> None:
    require(value in choices, where, f"{value!r} is not one of {', '.join(choices)}")
