"""`set` (MQTT): change one setting of a running daemon, more strictly than the file is read.

Rules, each refused with a ConfigError naming the field, the value and the rule:
- only settings of the live sections (hedge, execution, risk, engine, log) change live; paths,
  accounts, hedge instruments and accounts, venues, mqtt, journal, sim, external caps and
  positions are restart-only;
- one setting at a time, never a whole table of sections;
- strict types: no string-to-number or bool-to-number coercion ("0.5", true, "1e99"), no nan/inf;
- risk limits can be lowered (tightened) live but not loosened beyond the config file's values.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from bot.config import Settings
from bot.config_errors import (
    MASK,
    REPLACED,
    SECRET_FIELDS,
    ConfigError,
    Problem,
    problems_of,
    scrub,
    show,
)
from bot.config_execution import RiskConfig
from bot.policy_config import moved_hint

LIVE_SECTIONS = frozenset({"hedge", "execution", "risk", "engine", "log"})
RESTART_ONLY = "restart-only: edit the file and restart"
# Within live sections: what names the instruments and accounts the engine has wired up.
_RESTART_FIELDS = frozenset({("hedge", "account"), ("hedge", "instrument")})

# Risk limits where a lower value is stricter, and those where a higher value is.
LOWER_ONLY = (
    "max_order_notional_usd",
    "max_order_contracts",
    "max_notional_per_hour_usd",
    "max_notional_per_day_usd",
    "max_orders_per_minute",
    "max_position_contracts_default",
    "max_position_notional_usd",
    "price_collar_bps",
    "breaker_failures",
    "margin_ratio_warn",
    "margin_ratio_reduce",
    "var_limit_usd",
)
HIGHER_ONLY = ("liquidation_distance_warn", "liquidation_distance_reduce")
_RAISE_RULE = "to raise it, edit the file and reload"


def with_setting(
    settings: Settings, path: str, value: Any, file_settings: Settings | None = None
) -> Settings:
    """A copy of `settings` with one dotted setting changed, validated like the file and by the
    rules above. `file_settings` (the config file as last loaded; default `settings`) bounds
    the risk limits. Raises ConfigError naming the field, the value and the rule, with every
    secret the settings hold masked (the value may be one, pasted into the wrong field)."""
    try:
        return _with_setting(settings, path, value, file_settings)
    except ConfigError as e:
        raise ConfigError(e.source, scrub(e.problems, held_secrets(settings))) from None


def with_file_value(settings: Settings, path: str, value: Any) -> Settings:
    """A copy of `settings` with the dotted `path` (a setting or a whole table) set to
    `value`, validated as the config file is: what a variant of the file would give (the lab's
    sweeps). Not for a running daemon: `with_setting` holds live changes to stricter rules.
    Raises ConfigError naming the field, the value and the rule."""
    data = settings.model_dump(mode="python")
    parts = path.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"set {path}", [(".".join(parts[: i + 1]), "", "no such setting")])
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        rule = moved_hint(path, value) or "no such setting"
        raise ConfigError(f"set {path}", [(path, "", rule)])
    node[parts[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"set {path}", scrub(problems_of(e), held_secrets(settings))) from None


def held_secrets(model: BaseModel) -> list[str]:
    """Every value a SecretStr holds anywhere in the settings."""
    found: list[str] = []
    for name in type(model).model_fields:
        v = getattr(model, name)
        values = v.values() if isinstance(v, dict) else [v]
        for x in values:
            if isinstance(x, SecretStr):
                found.append(x.get_secret_value())
            elif isinstance(x, BaseModel):
                found.extend(held_secrets(x))
    return found


def _with_setting(
    settings: Settings, path: str, value: Any, file_settings: Settings | None
) -> Settings:
    source = f"set {path}"

    def refuse(where: str, rule: str) -> ConfigError:
        return ConfigError(source, [(where, show(value, path), rule)])

    parts = path.split(".")
    if any(p.lower() in SECRET_FIELDS for p in parts):
        raise ConfigError(source, [(path, MASK, "secrets cannot be set live")])
    if parts[0] not in LIVE_SECTIONS:
        raise refuse(path, f"{RESTART_ONLY} (live sections: {', '.join(sorted(LIVE_SECTIONS))})")
    if len(parts) < 2:
        raise refuse(path, "set one setting at a time, e.g. hedge.BTC.band")
    annotation = _annotation_of(parts)
    if annotation is None:
        raise refuse(path, moved_hint(path, value) or REPLACED.get(path.lower(), "no such setting"))
    if (parts[0], parts[-1]) in _RESTART_FIELDS or _holds_path(annotation):
        raise refuse(path, RESTART_ONLY)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        raise refuse(path, "set one setting at a time, not a whole table")
    try:
        TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError as e:
        # The hint only where it is the answer: text given where a number is expected.
        typed = {"float_type", "int_type", "float_parsing", "int_parsing"}
        hint = isinstance(value, str) and any(x["type"] in typed for x in e.errors())
        raise ConfigError(source, _under(path, problems_of(e), value, hint)) from None
    data = settings.model_dump(mode="python")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            raise refuse(".".join(parts[: i + 1]), "no such setting")
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        raise refuse(path, moved_hint(path, value) or REPLACED.get(path.lower(), "no such setting"))
    node[parts[-1]] = value
    try:
        new = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, problems_of(e)) from None
    problems = risk_loosened(new.risk, (file_settings or settings).risk)
    if problems:
        raise ConfigError(source, problems)
    return new


def risk_loosened(new: RiskConfig, file: RiskConfig) -> list[Problem]:
    """Risk limits in `new` looser than the config file's (None: not checked, the loosest)."""
    problems: list[Problem] = []
    for name in LOWER_ONLY + HIGHER_ONLY:
        now, cap = getattr(new, name), getattr(file, name)
        if cap is None or now == cap:
            continue
        looser = now is None or (now > cap if name in LOWER_ONLY else now < cap)
        if looser:
            side = "lowered" if name in LOWER_ONLY else "raised"
            rule = f"a risk limit can only be {side} live; the config file has {cap}; {_RAISE_RULE}"
            problems.append((f"risk.{name}", show(now, name), rule))
    default = file.max_position_contracts_default
    for symbol in sorted(set(file.max_position_contracts) | set(new.max_position_contracts)):
        cap = file.max_position_contracts.get(symbol, default)
        now = new.max_position_contracts.get(symbol, new.max_position_contracts_default)
        if cap is not None and (now is None or now > cap):
            where = f"risk.max_position_contracts.{symbol}"
            rule = f"a risk limit can only be lowered live; the config file has {cap}; "
            problems.append((where, show(now, where), rule + _RAISE_RULE))
    return problems


def _annotation_of(parts: list[str]) -> Any:
    """The declared type at a dotted path of Settings, or None when there is no such field."""
    ann: Any = Settings
    for part in parts:
        ann = _unwrap(ann)
        if get_origin(ann) in (Union, types.UnionType):
            # A tagged union of sections (hedge.<U>.policy): the member that has the field.
            members = [m for m in map(_unwrap, get_args(ann)) if isinstance(m, type)]
            ann = next(
                (m for m in members if issubclass(m, BaseModel) and part in m.model_fields), None
            )
            if ann is None:
                return None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part)
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(ann) is dict:
            ann = get_args(ann)[1]
        else:
            return None
    return ann


def _unwrap(ann: Any) -> Any:
    """Optional[X] -> X and Annotated[X, ...] -> X, for walking the model tree."""
    if get_origin(ann) is Annotated:
        return _unwrap(get_args(ann)[0])
    if get_origin(ann) in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return ann


def _holds_path(ann: Any) -> bool:
    return _unwrap(ann) is Path


def _under(path: str, problems: list[Problem], value: Any, hint: bool) -> list[Problem]:
    """Type errors of the bare value, placed at the setting's path; `hint`: say that a number
    must be given as a JSON number (a string was given)."""
    out: list[Problem] = []
    extra = " (strict: a number must be a JSON number)" if hint else ""
    for where, _shown, rule in problems:
        full = path if where == "<root>" else f"{path}.{where}"
        out.append((full, show(value, path), rule + extra))
    return out
