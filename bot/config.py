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
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    SecretStr,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.config_errors import ENV_PREFIX as ENV_PREFIX
from bot.config_errors import SECRET_FIELDS as SECRET_FIELDS
from bot.config_errors import ConfigError as ConfigError
from bot.config_errors import Problem, problems_of, scrub, secret_env_values, secret_values
from bot.config_sources import (
    absolute_path,
    declared_accounts,
    env_problems,
    read_secrets_file,
    read_toml,
    rebase_paths,
)
from bot.policy_config import PolicyConfig, explain_moved_keys


class Section(BaseModel):
    """Every section refuses unknown keys: a typo in a config file is an error, not a no-op.
    No float may be nan or inf: `band = inf` or `qty = nan` would silently stop hedging."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class AccountConfig(Section):
    exchange: Literal["sim", "binanceusdm", "bybit", "okx", "deribit"] = "sim"
    mode: Literal["paper", "testnet", "live"] = "paper"
    api_key: SecretStr | None = None
    secret: SecretStr | None = None
    password: SecretStr | None = None
    confirm_live: bool = Field(
        default=False, description="must be true, with keys, before a live account sends orders"
    )
    ccxt_options: dict[str, Any] = Field(default_factory=dict)
    urls: dict[str, str] = Field(
        default_factory=dict,
        description="replacements for ccxt's urls['api'] entries; a dotted key reaches into a "
        "nested entry (binanceusdm: 'ws.linear')",
    )
    request_timeout_s: float = Field(default=10.0, gt=0, description="ccxt REST timeout")
    read_attempts: int = Field(default=4, ge=1, le=20, description="tries per read, with backoff")
    retry_base_s: float = Field(default=0.25, gt=0, description="first backoff; doubles per try")
    retry_max_s: float = Field(default=5.0, gt=0, description="cap on one backoff")
    paper_balances: dict[str, float] = Field(
        default_factory=dict,
        description="paper mode on a real exchange: starting balances by currency",
    )
    position_mode: Literal["oneway", "hedge"] | None = Field(
        default=None,
        description="checked at start on testnet/live accounts (a mismatch refuses to start); "
        "unset: not checked",
    )
    margin_mode: Literal["cross", "isolated"] | None = Field(
        default=None,
        description="checked at start on testnet/live accounts for the symbols the config "
        "uses (a mismatch refuses to start); unset: not checked",
    )

    @model_validator(mode="after")
    def _live_needs_keys_and_confirmation(self) -> AccountConfig:
        if self.mode == "live":
            if self.exchange == "sim":
                raise ValueError("mode 'live' is not possible on the simulated exchange")
            if not _filled(self.api_key) or not _filled(self.secret):
                raise ValueError(
                    "mode 'live' needs non-empty api_key and secret (from the environment)"
                )
            if not self.confirm_live:
                raise ValueError("mode 'live' needs confirm_live = true")
        if self.mode == "testnet" and self.exchange != "sim" and not _filled(self.api_key):
            raise ValueError("mode 'testnet' needs api_key and secret (from the environment)")
        return self


def _filled(secret: SecretStr | None) -> bool:
    return secret is not None and secret.get_secret_value().strip() != ""


class SimUnderlying(Section):
    price: float = Field(gt=0, description="starting index price in USD")
    vol: float = Field(default=0.6, gt=0, le=5, description="GBM volatility and option IV")
    drift: float = Field(default=0.0, description="annual drift")
    jump_intensity: float = Field(default=4.0, ge=0, description="jumps per year")
    jump_mean: float = 0.0
    jump_std: float = Field(default=0.03, ge=0)
    # The price path's model (README "Markets to test on"); the fields below belong to one model.
    model: Literal["gbm", "jumps", "heston", "regime"] = Field(
        default="jumps", description="gbm, jumps (gbm + Merton jumps), heston or regime"
    )
    kappa: float = Field(default=2.0, gt=0, description="heston: variance mean reversion, 1/year")
    theta: float | None = Field(default=None, gt=0, description="heston: long-run variance (vol^2)")
    xi: float = Field(default=0.5, ge=0, description="heston: vol of variance")
    rho: float = Field(default=-0.5, ge=-1, le=1, description="heston: price/variance correlation")
    v0: float | None = Field(default=None, gt=0, description="heston: starting variance (theta)")
    vol2: float | None = Field(default=None, gt=0, le=5, description="regime: stressed vol (2 vol)")
    drift2: float = Field(default=0.0, description="regime: stressed annual drift")
    switch_rate: float = Field(default=12.0, ge=0, description="regime: calm to stressed, 1/year")
    switch_back_rate: float = Field(default=52.0, ge=0, description="regime: back to calm, 1/year")


class SimConfig(Section):
    seed: int = 1
    speed: float = Field(default=1.0, gt=0, description="simulated seconds per real second")
    tick_ms: int = Field(default=1000, gt=0, description="simulated ms between price updates")
    latency_ms: int = Field(default=50, ge=0, description="simulated order round trip")
    spread_bps: float = Field(default=2.0, ge=0)
    depth_levels: int = Field(default=20, ge=1)
    level_notional_usd: float = Field(default=250_000.0, gt=0, description="size of each level")
    level_step_bps: float = Field(default=1.0, gt=0)
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    reject_rate: float = Field(default=0.0, ge=0, lt=1, description="random reject probability")
    partial_fill_rate: float = Field(
        default=0.0, ge=0, le=1, description="probability a fill comes in parts"
    )
    option_spread_bps: float = Field(
        default=50.0, ge=0, description="option bid/ask spread, in bps of the option's mark"
    )
    balances: dict[str, float] = Field(
        default_factory=lambda: {"USDT": 1_000_000.0, "USDC": 1_000_000.0},
        description="starting cash and coin balances by currency (USDT, USDC, BTC, ...)",
    )
    state_file: Path | None = Field(
        default=None, description="persist the simulated exchange here so restarts resume it"
    )
    order_history: int = Field(
        default=1000,
        ge=1,
        description="finished orders (with their fills) the simulated exchange remembers; older "
        "ones are forgotten, as a venue's history is bounded (the journal keeps the record)",
    )
    # Drills (fault injection through the real entry point); both off by default.
    resend_fills_on_connect: bool = Field(
        default=False,
        description="after restoring state_file, re-send every fill on the fills stream "
        "(a reconnect replaying ccxt's trade cache)",
    )
    hide_new_orders_ms: int = Field(
        default=0, ge=0, description="fetch_order does not see an order this long after create"
    )
    unreachable_orders: int = Field(
        default=0,
        ge=0,
        description="the first N orders never reach the venue and no call about them is "
        "ever answered (stuck orders)",
    )
    underlyings: dict[str, SimUnderlying] = Field(
        default_factory=lambda: {"BTC": SimUnderlying(price=60_000.0)}
    )


class PositionConfig(Section):
    """A starting position. On the simulated exchange it is opened at start; `symbol` names a
    listed instrument, or the other fields describe one the simulator lists for the run."""

    account: str = "sim"
    symbol: str | None = None
    underlying: str | None = None
    kind: Literal["spot", "perp", "future", "option"] | None = None
    settlement: Literal["linear", "inverse"] = "linear"
    option_type: Literal["call", "put"] | None = None
    strike: float | None = Field(default=None, gt=0)
    expiry_days: float | None = Field(default=None, gt=0, le=3660)
    qty: float = Field(ge=-1e9, le=1e9)

    @model_validator(mode="after")
    def _symbol_or_description(self) -> PositionConfig:
        if self.symbol is None and (self.underlying is None or self.kind is None):
            raise ValueError("give either symbol, or underlying and kind")
        if self.kind == "option" and (
            self.option_type is None or self.strike is None or self.expiry_days is None
        ):
            raise ValueError("an option needs option_type, strike and expiry_days")
        if self.kind == "future" and self.expiry_days is None:
            raise ValueError("a future needs expiry_days")
        return self


class HedgeConfig(Section):
    """How one underlying is hedged."""

    account: str = "sim"
    instrument: str = Field(description="symbol of the hedge instrument, e.g. BTC/USDT:USDT")
    unit: Literal["coin", "usd"] = "coin"
    target: float = 0.0
    bias: float = Field(default=0.0, description="added to target, in `unit`")
    hedge_ratio: float = Field(default=1.0, gt=0, le=1, description="share of the gap to trade")
    policy: PolicyConfig = Field(description="[hedge.<U>.policy]: when to trade (kind = ...)")
    enabled: bool = True


ExecutionMode = Literal["taker", "maker_first", "twap"]


class InstrumentExecution(Section):
    """Per-instrument overrides of the execution defaults; a key left unset keeps the default."""

    mode: ExecutionMode | None = None
    max_slippage_bps: float | None = Field(default=None, gt=0, le=1000)
    on_slippage: Literal["shrink", "refuse"] | None = None
    max_cost_bps: float | None = Field(default=None, gt=0)
    cost_risk_ratio: float | None = Field(default=None, gt=0)
    twap_depth_fraction: float | None = Field(default=None, gt=0, le=10)


class ExecutionConfig(Section):
    """How approved intents are worked (bot/execution/executor.py).

    Cost rule (fee guard): an order is skipped when its expected cost (fee + slippage of the
    book walk, in USD) exceeds `max_cost_bps` of its notional, or exceeds `cost_risk_ratio` times
    the risk it removes: |delta removed in USD| x `cost_sigma` x sqrt(`cost_horizon_s` in years),
    the one-sigma move of the unhedged delta over the horizon.
    """

    mode: ExecutionMode = Field(
        default="taker", description="taker | maker_first | twap; override per symbol below"
    )
    max_slippage_bps: float = Field(
        default=20.0, gt=0, le=1000, description="max expected average fill price from mid"
    )
    on_slippage: Literal["shrink", "refuse"] = Field(
        default="shrink", description="when the walk exceeds the cap: send what fits, or nothing"
    )
    allow_no_book: bool = Field(
        default=False,
        description="with no fresh book, send a limit capped at mid +/- max_slippage_bps "
        "(False: refuse, never send blind)",
    )
    book_max_age_s: float = Field(default=5.0, gt=0, description="older books count as none")
    max_fee_bps: float = Field(default=10.0, ge=0, description="refuse orders costlier than this")
    max_cost_bps: float | None = Field(
        default=30.0, gt=0, description="skip orders whose fee + slippage exceeds this"
    )
    cost_risk_ratio: float | None = Field(
        default=1.0, gt=0, description="skip orders costing more than this x the risk removed"
    )
    cost_sigma: float = Field(default=0.6, gt=0, le=10, description="annual vol for the rule")
    cost_horizon_s: float = Field(default=3600.0, gt=0, description="horizon of the risk removed")
    maker_reprices: int = Field(default=3, ge=0, le=100, description="post-only re-prices")
    maker_reprice_s: float = Field(default=2.0, gt=0, description="wait per post-only order")
    maker_timeout_s: float = Field(default=10.0, gt=0, description="then fall back to taker")
    twap_depth_fraction: float = Field(
        default=0.25, gt=0, le=10, description="slice orders above this x visible depth"
    )
    twap_duration_s: float = Field(default=60.0, gt=0, description="spread the slices over this")
    twap_max_slices: int = Field(default=10, ge=2, le=1000)
    order_timeout_s: float = Field(default=10.0, gt=0)
    on_shutdown: Literal["cancel", "finish"] = Field(
        default="cancel",
        description="orders working at shutdown: cancel them, or let them finish (both bounded "
        "by shutdown_timeout_s; what is still open then is cancelled)",
    )
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    lookup_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="an order lookups do not find stays in flight this long after it was sent "
        "before it counts as never arrived (venues take time to show new orders)",
    )
    stuck_alert_s: float = Field(
        default=30.0, gt=0, description="first gap between alerts about a stuck order"
    )
    stuck_alert_max_s: float = Field(
        default=900.0, gt=0, description="the gap doubles after each alert up to this"
    )
    recover_open_orders: Literal["cancel", "keep"] = Field(
        default="cancel",
        description="orders found open at the venue after a restart: cancel them (their fills "
        "are then final before positions are read) or keep working them",
    )
    client_id_prefix: str = Field(
        default="hb", pattern=r"^[A-Za-z0-9]{1,8}$", description="our orders' client id prefix"
    )
    instruments: dict[str, InstrumentExecution] = Field(
        default_factory=dict, description="overrides by hedge symbol (case-insensitive)"
    )

    def for_symbol(self, symbol: str) -> ExecutionConfig:
        """These settings with the symbol's overrides applied. Keys are matched
        case-insensitively because config keys are lower-cased on load."""
        over = self.instruments.get(symbol)
        if over is None:
            over = next(
                (v for k, v in self.instruments.items() if k.lower() == symbol.lower()), None
            )
        if over is None:
            return self
        changes = {k: v for k, v in over.model_dump().items() if v is not None}
        return self.model_copy(update=changes) if changes else self


class RiskConfig(Section):
    """Pre-trade limits (bot/core/risk.py). A limit left at None is not checked."""

    max_order_notional_usd: float = Field(default=1_000_000.0, gt=0)
    max_order_contracts: float | None = Field(default=None, gt=0)
    max_notional_per_hour_usd: float | None = Field(
        default=None, gt=0, description="sent order notional in any rolling hour"
    )
    max_notional_per_day_usd: float | None = Field(
        default=None, gt=0, description="sent order notional in any rolling 24 hours"
    )
    max_orders_per_minute: int | None = Field(
        default=30, gt=0, description="orders sent in any rolling minute (storm guard)"
    )
    max_position_contracts: dict[str, float] = Field(
        default_factory=dict,
        description="max |position| per symbol, in contracts, in-flight orders included",
    )
    max_position_contracts_default: float | None = Field(
        default=None, gt=0, description="max |position| for symbols not in max_position_contracts"
    )
    max_position_notional_usd: float | None = Field(
        default=None, gt=0, description="max |position| per instrument in USD at the order price"
    )
    price_collar_bps: float = Field(
        default=100.0, gt=0, le=10_000, description="max distance of a limit price from the mark"
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive venue rejects/errors that open the breaker"
    )
    breaker_cooldown_s: float | None = Field(
        default=300.0, gt=0, description="breaker closes after this; None: operator reset only"
    )
    margin_ratio_warn: float | None = Field(
        default=0.5, gt=0, description="maintenance margin / equity above which to warn"
    )
    margin_ratio_reduce: float | None = Field(
        default=0.75, gt=0, description="... above which to trade reducing-only"
    )
    liquidation_distance_warn: float | None = Field(
        default=0.15, gt=0, lt=1, description="|mark - liquidation| / mark below which to warn"
    )
    liquidation_distance_reduce: float | None = Field(
        default=0.08, gt=0, lt=1, description="... below which to trade reducing-only"
    )
    var_limit_usd: float | None = Field(
        default=None, gt=0, description="1-day 99% VaR of the book above which to reduce only"
    )
    scenario_spot_pct: list[float] = Field(
        default_factory=lambda: [-30.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 30.0],
        min_length=1,
        description="spot shocks of the scenario grid, percent",
    )
    scenario_iv_points: list[float] = Field(
        default_factory=lambda: [-20.0, -10.0, 0.0, 10.0, 20.0],
        min_length=1,
        description="implied-vol shocks of the scenario grid, vol points",
    )
    var_sample_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="index sampled this often for VaR"
    )
    var_window: int = Field(default=250, ge=2, le=100_000, description="returns kept for VaR")
    var_min_samples: int = Field(
        default=100, ge=1, description="no VaR (null) until this many returns are recorded"
    )
    initial_state: Literal["active", "reducing_only", "halted"] = "active"
    halt_file: Path | None = Field(
        default=None, description="kill switch: while this file exists, trading is halted"
    )

    @model_validator(mode="after")
    def _reduce_beyond_warn(self) -> RiskConfig:
        # The warn level must come first, and the gap between them is the hysteresis that keeps
        # a margin-forced reducing_only state from flapping.
        mr_w, mr_r = self.margin_ratio_warn, self.margin_ratio_reduce
        if mr_w is not None and mr_r is not None and mr_r < mr_w:
            raise ValueError("margin_ratio_reduce must be >= margin_ratio_warn")
        ld_w, ld_r = self.liquidation_distance_warn, self.liquidation_distance_reduce
        if ld_w is not None and ld_r is not None and ld_r > ld_w:
            raise ValueError("liquidation_distance_reduce must be <= liquidation_distance_warn")
        bad = [x for x in self.scenario_spot_pct if not -100.0 < x < 1000.0]
        if bad:
            # a -100 % shock is a zero price: no option or inverse contract has a value there
            raise ValueError(f"scenario_spot_pct values must be in (-100, 1000) percent, got {bad}")
        if self.var_min_samples > self.var_window:
            raise ValueError(
                f"var_min_samples ({self.var_min_samples}) must be <= var_window "
                f"({self.var_window}): VaR would never be reported"
            )
        return self


def default_journal_path(mode: str) -> Path:
    return Path(f"state/{mode}-journal.sqlite")


class JournalConfig(Section):
    path: Path = Field(
        default=default_journal_path("paper"),
        description="SQLite journal (WAL mode); by default state/<mode>-journal.sqlite, the mode "
        "being the most real of the accounts' modes (live > testnet > paper)",
    )


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
    corridor_refresh_s: float = Field(
        default=3600.0, gt=0, description="longest a corridor is trusted before a fresh decision"
    )
    fast_forward: bool = Field(
        default=True,
        description="backtests only: step over ticks at which nothing but the index moves "
        "inside every corridor without the full per-tick path; same results (README: backtests)",
    )


class MetricsConfig(Section):
    """Prometheus exposition on http://host:port/metrics."""

    enabled: bool = False
    host: str = Field(default="127.0.0.1", description="listen address (127.0.0.1: local only)")
    port: int = Field(default=9108, ge=1, le=65535)
    refresh_s: float = Field(default=1.0, gt=0, description="how often gauges are read")
    health_max_lag_s: float = Field(
        default=5.0,
        ge=2.0,
        description="/healthz answers 503 when the event loop's 1 s heartbeat is older than this",
    )


class ExternalConfig(Section):
    """Caps on positions reported over MQTT `positions/in` (checked by bot/core/external.py):
    a message beyond them is refused with the rule, never counted."""

    max_sources: int = Field(default=100, ge=1, description="distinct sources at once")
    max_positions: int = Field(default=1000, ge=1, description="positions at once, all sources")
    max_abs_qty: float = Field(default=1e6, gt=0, description="|qty| of one position")
    max_abs_delta_coin_per_source: float = Field(
        default=1000.0, gt=0, description="|net delta| in coin of one source in one underlying"
    )
    max_abs_delta_coin_total: float = Field(
        default=5000.0, gt=0, description="|net delta| in coin of all sources in one underlying"
    )
    max_ttl_s: float = Field(
        default=7 * 86_400.0, gt=0, description="longest lifetime (ttl_s, or expires_at_ms - now)"
    )


class MqttConfig(Section):
    """The MQTT control plane and telemetry. The broker is never on the money path: when it is
    down the daemon keeps hedging and the bridge keeps retrying quietly."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="from the environment only")
    tls: bool = Field(default=False, description="use TLS (system CAs unless ca_file is set)")
    ca_file: Path | None = Field(default=None, description="CA bundle; implies tls")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = None
    tls_insecure: bool = Field(
        default=False, description="skip the broker hostname check (test brokers only)"
    )
    topic_prefix: str = Field(default="hedgebot", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    command_secret: SecretStr | None = Field(
        default=None, description="when set, every command needs a fresh ts and an HMAC sig"
    )
    command_max_age_s: float = Field(default=30.0, gt=0, le=3600)
    keepalive: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    event_queue_size: int = Field(default=10_000, ge=1)
    state_interval_s: float = Field(default=5.0, gt=0)
    max_payload_bytes: int = Field(default=65_536, ge=256)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


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

    @model_validator(mode="before")
    @classmethod
    def _canonical_names(cls, data: Any) -> Any:
        # Environment names are case-insensitive (HEDGEBOT_HEDGE__BTC__BAND arrives as
        # hedge.btc.band), so names are made canonical after the sources are merged:
        # underlyings upper case, account names lower case.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("hedge"), dict):
            data["hedge"] = {str(k).upper(): _lower_account(v) for k, v in data["hedge"].items()}
        if isinstance(data.get("accounts"), dict):
            data["accounts"] = {
                str(k).lower(): _upper_keys_of(v, "paper_balances")
                for k, v in data["accounts"].items()
            }
        if isinstance(data.get("positions"), list):
            data["positions"] = [_lower_account(p) for p in data["positions"]]
        if isinstance(data.get("sim"), dict):
            data["sim"] = _upper_keys_of(data["sim"], "underlyings", "balances")
        return data

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
    def _accounts_exist(self) -> Settings:
        for name, h in self.hedge.items():
            if h.account not in self.accounts:
                raise ValueError(f"hedge.{name}.account: no account named {h.account!r}")
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


def _upper_keys_of(section: Any, *fields: str) -> Any:
    """Currency and underlying names are upper case, whichever case the source used."""
    if not isinstance(section, dict):
        return section
    out = dict(section)
    for f in fields:
        if isinstance(out.get(f), dict):
            out[f] = {str(k).upper(): v for k, v in out[f].items()}
    return out


def _lower_account(v: Any) -> Any:
    if isinstance(v, dict) and isinstance(v.get("account"), str):
        return {**v, "account": v["account"].lower()}
    return v


# Sub-trees whose keys belong to someone else (ccxt options, urls, symbols) and keep their case:
# a lower-cased symbol would never match, and its position limit would silently not apply.
_CASE_KEPT = frozenset({"ccxt_options", "urls", "max_position_contracts"})


def _lower_keys(data: Any) -> Any:
    """Lower-case the keys of a TOML document so it merges with environment overrides, whose
    names the environment source lower-cases."""
    if isinstance(data, dict):
        return {
            str(k).lower(): (v if str(k).lower() in _CASE_KEPT else _lower_keys(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_lower_keys(v) for v in data]
    return data


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
        settings = Settings(**_lower_keys(data), **kwargs)
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
    accounts = declared_accounts(_lower_keys(data), ("sim",))  # the default account
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
        data = _lower_keys(read_toml(Path(path), str(path)))
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
