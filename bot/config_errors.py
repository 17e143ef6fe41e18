"""Config errors as (field path, shown value, rule), rendered so that no secret can leak.

A value is shown only when it is a plain scalar at a path that names no secret field and is not an
unknown key (a misspelt `api_kye` still holds a key). Tables and lists are never shown: a
model-level error's input is the whole merged document, environment and secrets file included.
On top of that, every known secret value (from the environment, the secrets file or the file)
is masked wherever it would still appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

ENV_PREFIX = "HEDGEBOT_"
SECRET_FIELDS = frozenset({"api_key", "secret", "password", "passphrase", "command_secret"})
MASK = "'**********'"
# Shorter secrets are masked where a shown value equals them, not inside longer text, where
# they would mask half of every message and protect nothing.
_MIN_SCRUB_LEN = 4

Problem = tuple[str, str, str]
_NAMED = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_/:-]+)+): (.+)$", re.DOTALL)


class ConfigError(Exception):
    """Every problem found in a config, each as (field path, bad value, rule)."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[Problem]]]:
        # Raised in a backtest worker process, it reaches the parent whole (not a broken pool).
        return (ConfigError, (self.source, self.problems))

    def render(self) -> str:
        if len(self.problems) == 1:
            return self.one_line()
        lines = [f"{self.source}: {len(self.problems)} error(s)"]
        for path, value, rule in self.problems:
            lines.append(f"  {path}: {rule} (got {value})" if value else f"  {path}: {rule}")
        return "\n".join(lines)

    def one_line(self) -> str:
        """The first problem on one line, for command line tools that stop at the first."""
        path, value, rule = self.problems[0]
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        got = f" (got {value})" if value else ""
        return f"{self.source}: {path}: {rule}{got}{more}"


def is_secret_path(path: str) -> bool:
    return any(part.lower() in SECRET_FIELDS for part in path.replace("__", ".").split("."))


def show(value: Any, path: str) -> str:
    """A short, safe rendering of a bad value; tables and lists are summarised, never dumped."""
    if is_secret_path(path):
        return MASK
    if isinstance(value, dict):
        return ""  # a table: the rule says what is wrong with it
    if isinstance(value, list | tuple | set):
        return f"a list of {len(value)} item(s)"
    if value is None or isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    # Anything else (a SecretStr, a Path, a model) is described by its type only.
    return f"a {type(value).__name__}"


# Keys replaced by another key: the error says what to write instead.
REPLACED = {
    "execution.cancel_on_shutdown": 'replaced by execution.on_shutdown = "cancel" (was true) '
    'or "finish" (was false: let orders in flight complete within shutdown_timeout_s)',
}


def problems_of(e: ValidationError) -> list[Problem]:
    """(field path, shown value, rule) for each error, secrets masked."""
    problems: list[Problem] = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            # The value of an unknown key is never shown: it may be a misspelt secret.
            rule = REPLACED.get(loc.lower(), "unknown setting (check the spelling)")
            problems.append((loc or "<root>", "", rule))
            continue
        rule = rule.removeprefix("Value error, ")
        # Cross-field checks name their field first ("hedge.BTC.account: no account ...").
        named = _NAMED.match(rule)
        if named is not None and not loc:
            loc, rule = named.group(1), named.group(2)
        problems.append((loc or "<root>", show(err.get("input"), loc), rule))
    return problems


def secret_values(data: Any) -> list[str]:
    """Every non-empty string held under a secret field name in a (nested) document."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if str(key).lower() in SECRET_FIELDS and isinstance(value, str) and value:
                found.append(value)
            found.extend(secret_values(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(secret_values(value))
    return found


def secret_env_values(env: Mapping[str, str | None]) -> list[str]:
    """Values of HEDGEBOT_* variables that name a secret field (environment or secrets file)."""
    return [
        v
        for k, v in env.items()
        if v and k.upper().startswith(ENV_PREFIX) and is_secret_path(k[len(ENV_PREFIX) :])
    ]


def scrub(problems: Iterable[Problem], secrets: Iterable[str]) -> list[Problem]:
    """Mask every known secret value that would still appear in a problem."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    out: list[Problem] = []
    for path, value, rule in problems:
        for s in values:
            if value.strip("'\"") == s or (len(s) >= _MIN_SCRUB_LEN and s in value):
                value = MASK
            if len(s) >= _MIN_SCRUB_LEN:
                path = path.replace(s, "**********")
                rule = rule.replace(s, "**********")
        out.append((path, value, rule))
    return out
