"""[accounts.<name>]: an exchange account, its mode (paper, testnet, live) and its ccxt settings.
Keys come from the environment or the secrets file only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from bot.config_base import Section


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
