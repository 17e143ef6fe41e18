"""Configuration: one pydantic model tree, loaded from TOML and overridden by the environment.

Precedence, highest first: environment (`HEDGEBOT_` prefix, `__` between nested names, e.g.
`HEDGEBOT_EXECUTION__MAX_SLIPPAGE_BPS=15`), the secrets file (dotenv format, same names), the TOML
file, the defaults here. Secrets (API keys, passwords) are refused in the TOML file.

Input safety: every float must be finite (nan and inf are refused wherever they come from), a
HEDGEBOT_* variable must name a setting, accounts exist only where the file declares them, and
relative paths resolve against the config file's directory. Errors never show a secret
(bot/config_errors.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PositiveFloat,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.config_accounts import AccountConfig
from bot.config_base import Section
from bot.config_errors import (
    ENV_PREFIX,
    SECRET_FIELDS,
    Problem,
    problems_of,
    scrub,
    secret_env_values,
    secret_values,
)
from bot.config_errors import ConfigError as ConfigError
from bot.config_execution import ExecutionConfig, RiskConfig
from bot.config_hedge import HedgeConfig
from bot.config_names import canonical_names, lower_keys
from bot.config_ops import (
    ExternalConfig,
    JournalConfig,
    LogConfig,
    MetricsConfig,
    MqttConfig,
    default_journal_path,
)
from bot.config_sim import PositionConfig, SimConfig
from bot.config_sources import (
    absolute_path,
    declared_accounts,
    env_problems,
    read_secrets_file,
    read_toml,
    rebase_paths,
)
from bot.cross_config import cross_problems
from bot.policy_config import explain_moved_keys
from bot.routing_config import RoutingConfig

StreamKind = Literal["ticker", "book", "positions_poll"]


class EngineConfig(Section):
    hedge_view: Literal["usd", "coin"] = "usd"
    rate: float = Field(default=0.0, description="risk-free rate for option greeks")
    greeks_source: Literal["own", "venue", "both"] = Field(
        default="own",
        description="option delta from our Black-Scholes (own), from the venue's ticker "
        "(venue), or own with an alert when the two diverge (both)",
    )
    greeks_divergence_tol: float = Field(
        default=0.05,
        gt=0,
        description="relative: alert when |own - venue| > tol x max(|own|, |venue|) of an "
        "underlying's total option delta (and above greeks_divergence_min_coin)",
    )
    greeks_divergence_min_coin: float = Field(
        default=0.01, ge=0, description="absolute floor in coin, so tiny books do not alert"
    )
    stale_after_s: float = Field(default=15.0, gt=0, description="halt on data older than this")
    stale_after_by_stream: dict[StreamKind, PositiveFloat] = Field(
        default_factory=dict,
        description="per stream kind (ticker, book, positions_poll) limit in seconds; a kind "
        "left out uses stale_after_s",
    )
    position_poll_s: float = Field(
        default=5.0, gt=0, description="REST position poll where the venue has no stream"
    )
    position_confirm_s: float = Field(
        default=10.0,
        gt=0,
        description="after one of our fills, a position stream silent this long is dead",
    )
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    summary_interval_s: float = Field(default=60.0, gt=0)
    corridor: bool = Field(
        default=True,
        description="after a decision that does not trade, skip evaluating ticks whose index "
        "stays inside the range where the policy provably cannot fire (README: corridor)",
    )
    retry_after_refusal_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="after a trade that sent nothing (a risk rule, an execution guard, less "
        "than one lot), decide to trade again only this much later (0: at the next tick); "
        "hedge-now, a config change or a trading-state change retries at once",
    )
    corridor_refresh_s: float = Field(
        default=3600.0, gt=0, description="longest a corridor is trusted before a fresh decision"
    )
    fast_forward: bool = Field(
        default=True,
        description="backtests only: step over ticks at which nothing but the index moves "
        "inside every corridor without the full per-tick path; same results (README: backtests)",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        allow_inf_nan=False,
    )

    bot_id: str = Field(default="hedgebot", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    log: LogConfig = LogConfig()
    engine: EngineConfig = EngineConfig()
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig = RiskConfig()
    journal: JournalConfig = JournalConfig()
    sim: SimConfig = SimConfig()
    accounts: dict[str, AccountConfig] = Field(default_factory=lambda: {"sim": AccountConfig()})
    hedge: Annotated[dict[str, HedgeConfig], WrapValidator(explain_moved_keys)] = Field(
        default_factory=dict
    )
    positions: list[PositionConfig] = Field(default_factory=list)
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    external: ExternalConfig = ExternalConfig()
    routing: RoutingConfig = RoutingConfig()

    @model_validator(mode="before")
    @classmethod
    def _canonical_names(cls, data: Any) -> Any:
        # Environment names are case-insensitive (HEDGEBOT_HEDGE__BTC__BAND arrives as
        # hedge.btc.band), so names are made canonical after the sources are merged:
        # underlyings upper case, account names lower case.
        return canonical_names(data)

    @model_validator(mode="before")
    @classmethod
    def _journal_per_mode(cls, data: Any) -> Any:
        # Paper, testnet and live never share a journal unless the config says so: recovery
        # would otherwise replay one mode's in-flight intents against another's venue.
        if not isinstance(data, dict):
            return data
        journal = data.get("journal")
        if journal is not None and not (isinstance(journal, dict) and "path" not in journal):
            return data
        accounts = data.get("accounts")
        modes = {"paper"}
        if isinstance(accounts, dict):
            for acc in accounts.values():
                mode = (
                    acc.get("mode", "paper")
                    if isinstance(acc, dict)
                    else getattr(acc, "mode", "paper")
                )
                modes.add(str(mode))
        mode = next((m for m in ("live", "testnet") if m in modes), "paper")
        return {**data, "journal": {**(journal or {}), "path": default_journal_path(mode)}}

    @model_validator(mode="after")
    def _cross_hedges_chain_right(self) -> Settings:
        problems = cross_problems(self.hedge)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _accounts_exist(self) -> Settings:
        for name, h in self.hedge.items():
            if h.account not in self.accounts:
                raise ValueError(f"hedge.{name}.account: no account named {h.account!r}")
            for i, c in enumerate(h.candidates):
                if c.account not in self.accounts:
                    raise ValueError(
                        f"hedge.{name}.candidates.{i}.account: no account named {c.account!r}"
                    )
        for name in self.sim.accounts:
            acc = self.accounts.get(name)
            if acc is None or acc.exchange != "sim":
                raise ValueError(f"sim.accounts.{name}: no simulated account named {name!r}")
        for i, p in enumerate(self.positions):
            acc = self.accounts.get(p.account)
            if acc is None:
                raise ValueError(f"positions.{i}.account: no account named {p.account!r}")
            if acc.exchange != "sim" and acc.mode != "paper":
                # The same rule the daemon applies (make_venues), so check-config refuses it too.
                raise ValueError(
                    f"positions.{i}.account: starting positions are for sim and paper accounts; "
                    f"{p.account!r} is {acc.mode} on {acc.exchange}, whose positions come from "
                    "the exchange"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (the parsed TOML, passed by load_settings) ranks below env and the secrets file.
        return env_settings, dotenv_settings, init_settings


def load_settings(
    path: str | Path | None,
    secrets_file: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Load, validate and return the settings, or raise ConfigError listing every problem.
    Relative paths resolve against the config file's directory (the working directory when
    there is no file). No error text holds a secret value from any source."""
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = read_toml(Path(path), source) if path is not None else {}
    environ: dict[str, str] = dict(os.environ) if env is None else dict(env)
    dotenv = read_secrets_file(Path(secrets_file), source) if secrets_file is not None else {}
    secrets = [*secret_values(data), *secret_env_values(environ), *secret_env_values(dotenv)]
    problems = _source_problems(data, environ, dotenv)
    if problems:
        raise ConfigError(source, scrub(problems, secrets))
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        kwargs: dict[str, Any] = {}
        if secrets_file is not None:
            kwargs["_env_file"] = str(secrets_file)
        settings = Settings(**lower_keys(data), **kwargs)
    except ValidationError as e:
        raise ConfigError(source, scrub(problems_of(e), secrets)) from None
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)
    from bot.config_checks import file_problems, sim_problems  # they need the models above

    base = Path(path).resolve().parent if path is not None else Path.cwd()
    settings = rebase_paths(settings, base)
    from bot.clock import wall_ms

    problems = sim_problems(settings, wall_ms()) + file_problems(settings)
    if problems:
        raise ConfigError(source, scrub(problems, secrets))
    return settings


def _source_problems(
    data: dict[str, Any], environ: dict[str, str], dotenv: dict[str, str | None]
) -> list[Problem]:
    """Secrets written into the file, and HEDGEBOT_* variables that name no setting or an
    account the file does not declare."""
    problems: list[Problem] = [
        (
            p,
            "'**********'",
            "secrets are not allowed in the config file; use the "
            f"environment ({ENV_PREFIX}{p.upper().replace('.', '__')}) or a secrets file",
        )
        for p in _find_secrets(data)
    ]
    sections = Settings.model_fields.keys()
    accounts = declared_accounts(lower_keys(data), ("sim",))  # the default account
    problems += env_problems(environ, sections, accounts, "environment variable")
    problems += env_problems(dotenv, sections, accounts, "secrets file variable")
    return problems


def _find_secrets(data: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            sub = f"{path}.{key}" if path else str(key)
            if str(key).lower() in SECRET_FIELDS and value not in (None, ""):
                found.append(sub)
            found.extend(_find_secrets(value, sub))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(_find_secrets(value, f"{path}.{i}"))
    return found


def halt_file_of(path: str | Path, env: dict[str, str] | None = None) -> Path | None:
    """risk.halt_file alone, absolute, from a config file that may not validate otherwise:
    the kill switch must work even when an unrelated setting (or a secret missing from this
    shell) makes the whole config invalid. None when the file gives none."""
    try:
        data = lower_keys(read_toml(Path(path), str(path)))
    except ConfigError:
        return None
    environ = dict(os.environ) if env is None else env
    over = {k.upper(): v for k, v in environ.items()}.get(f"{ENV_PREFIX}RISK__HALT_FILE")
    risk = data.get("risk")
    value = over or (risk.get("halt_file") if isinstance(risk, dict) else None)
    if not isinstance(value, str) or not value:
        return None
    return absolute_path(Path(value), Path(path).resolve().parent)


def paths_of(settings: Settings) -> dict[str, str | None]:
    """The files the daemon reads and writes, absolute, for the start-up log line."""
    return {
        "halt_file": _str(settings.risk.halt_file),
        "journal": str(settings.journal.path),
        "sim_state_file": _str(settings.sim.state_file),
    }


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The resolved settings as plain data, secrets masked (SecretStr dumps as '**********')."""
    return settings.model_dump(mode="json")
