"""What can be held or traded: one frozen description per venue symbol.

Quantities are always in contracts (for spot: coin). The contract size says what one contract is:
coin for spot and linear contracts, quote currency (USD) for inverse ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    SPOT = "spot"
    PERP = "perp"
    FUTURE = "future"
    OPTION = "option"


class Settlement(StrEnum):
    LINEAR = "linear"  # settled in the quote currency (USDT, USDC, USD)
    INVERSE = "inverse"  # settled in the coin; contract size is in USD


class OptionType(StrEnum):
    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    underlying: str
    kind: Kind
    settlement: Settlement = Settlement.LINEAR
    contract_size: float = 1.0
    quote: str = "USD"
    expiry_ms: int | None = None
    strike: float | None = None
    option_type: OptionType | None = None
    amount_step: float = 1e-8
    price_step: float = 0.01
    min_amount: float = 0.0
    min_cost: float = 0.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005

    def __post_init__(self) -> None:
        if self.contract_size <= 0:
            raise ValueError(f"{self.symbol}: contract_size must be > 0")
        if self.amount_step <= 0 or self.price_step <= 0:
            raise ValueError(f"{self.symbol}: amount_step and price_step must be > 0")
        if self.kind is Kind.OPTION and None in (self.strike, self.expiry_ms, self.option_type):
            raise ValueError(f"{self.symbol}: an option needs strike, expiry and option_type")
        if self.kind is Kind.FUTURE and self.expiry_ms is None:
            raise ValueError(f"{self.symbol}: a dated future needs an expiry")
        if self.kind is Kind.SPOT and self.settlement is Settlement.INVERSE:
            raise ValueError(f"{self.symbol}: spot cannot be inverse")

    @property
    def is_inverse(self) -> bool:
        return self.settlement is Settlement.INVERSE

    def coin_delta_per_contract(self, price: float) -> float:
        """Delta-one coin exposure of one long contract at `price` (not for options)."""
        if self.is_inverse:
            return self.contract_size / price
        return self.contract_size

    def notional_usd(self, qty: float, price: float) -> float:
        """USD notional of `qty` contracts at `price` (options: of the underlying)."""
        if self.is_inverse:
            return abs(qty) * self.contract_size
        return abs(qty) * self.contract_size * price

    def round_amount(self, qty: float) -> float:
        """Truncate toward zero to the lot step, as exchanges (and ccxt) do."""
        steps = math.floor(abs(qty) / self.amount_step + 1e-9)
        return math.copysign(round(steps * self.amount_step, 12), qty) if steps else 0.0

    def round_price(self, price: float, up: bool) -> float:
        """Round to the tick. A buy's price cap rounds down and a sell's up, so a cap is never
        crossed by rounding."""
        ticks = price / self.price_step
        n = math.ceil(ticks - 1e-9) if up else math.floor(ticks + 1e-9)
        # Rounded to the tick's decimals, not to 12: at 6e4 a 12-decimal round keeps float noise
        # (60876.600000000006), a price that then fails to cross a book level at 60876.6.
        decimals = max(0, -math.floor(math.log10(self.price_step) + 1e-9)) + 2
        return round(n * self.price_step, decimals)
