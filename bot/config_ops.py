"""Operations sections: [log], [journal], [metrics], [external] (caps on MQTT-reported
positions) and [mqtt]."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from bot.config_base import Section


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def default_journal_path(mode: str) -> Path:
    return Path(f"state/{mode}-journal.sqlite")


class JournalConfig(Section):
    path: Path = Field(
        default=default_journal_path("paper"),
        description="SQLite journal (WAL mode); by default state/<mode>-journal.sqlite, the mode "
        "being the most real of the accounts' modes (live > testnet > paper)",
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
