"""Where settings come from, checked before pydantic sees them: the TOML file, the secrets file,
the environment, and the directory relative paths are resolved against.

Pure functions apart from reading the two files; each problem is (field or variable, value, rule).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel

from bot.config_errors import ENV_PREFIX, ConfigError, Problem

M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path, source: str) -> dict[str, Any]:
    """The parsed file, or ConfigError with one clear line (missing, a directory, unreadable)."""
    shown = repr(str(path))
    if path.is_dir():
        raise ConfigError(source, [("<file>", shown, "is a directory, not a config file")])
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(source, [("<file>", shown, "file not found")]) from None
    except OSError as e:
        raise ConfigError(source, [("<file>", shown, f"cannot read: {e.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, [("<file>", shown, "not valid TOML: not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [("<file>", "TOML", f"not valid TOML: {e}")]) from None


def read_secrets_file(path: Path, source: str) -> dict[str, str | None]:
    """The dotenv file's variables (values never shown), or ConfigError with one clear line."""
    shown = repr(str(path))
    if path.is_dir():
        raise ConfigError(source, [("<secrets_file>", shown, "is a directory, not a file")])
    if not path.is_file():
        raise ConfigError(source, [("<secrets_file>", shown, "file not found")])
    try:
        with open(path, encoding="utf-8") as f:
            return dict(dotenv_values(stream=f))
    except OSError as e:
        problem = ("<secrets_file>", shown, f"cannot read: {e.strerror}")
        raise ConfigError(source, [problem]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, [("<secrets_file>", shown, "not UTF-8 text")]) from None


def declared_accounts(data: Mapping[str, Any], default: Iterable[str]) -> set[str]:
    """Account names the config file declares (lower case); the defaults when it has none."""
    accounts = data.get("accounts")
    if isinstance(accounts, dict):
        return {str(k).lower() for k in accounts}
    return set(default)


def env_problems(
    env: Mapping[str, str | None], sections: Iterable[str], accounts: set[str], origin: str
) -> list[Problem]:
    """Refuse HEDGEBOT_* variables that name no setting, and account variables for an account
    the config file does not declare (they would create a phantom account). Values are never
    shown: the variable may hold a secret."""
    known = set(sections)
    problems: list[Problem] = []
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        where = f"{origin} {name}"
        if parts[0] not in known:
            rule = (
                f"unknown variable: no setting {parts[0]!r} "
                f"(settings: {', '.join(sorted(known))}; nested names are joined with __)"
            )
            problems.append((where, "", rule))
        elif parts[0] == "accounts" and (len(parts) < 3 or not all(parts[1:3])):
            rule = "accounts are declared in the config file; set one key at a time: "
            problems.append((where, "", rule + f"{ENV_PREFIX}ACCOUNTS__<NAME>__<KEY>"))
        elif parts[0] == "accounts" and parts[1] not in accounts:
            rule = (
                f"no account {parts[1]!r} in the config file (declared: "
                f"{', '.join(sorted(accounts)) or 'none'}); add [accounts.{parts[1]}] there"
            )
            problems.append((where, "", rule))
    return problems


def absolute_path(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def rebase_paths(model: M, base: Path) -> M:
    """The model with every relative Path field made absolute against `base` (the config file's
    directory), so every process reading the file (daemon, `hedgebot halt`, `hedgebot journal`)
    means the same files whatever its working directory."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        new: Any = value
        if isinstance(value, Path):
            new = absolute_path(value, base)
        elif isinstance(value, BaseModel):
            new = rebase_paths(value, base)
        elif isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
            new = {
                k: rebase_paths(v, base) if isinstance(v, BaseModel) else v
                for k, v in value.items()
            }
        if new != value:
            updates[name] = new
    return model.model_copy(update=updates) if updates else model
