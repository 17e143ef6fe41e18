"""What the simulated exchange lists, under ccxt-style unified symbols.

For each configured underlying U (prices in USD):
    U/USDT                     spot, 1 coin
    U/USDT:USDT                linear perp, 1 coin per contract
    U/USD:U                    inverse perp, 10 USD per contract, settled in U
and, when a starting position describes one (or names its symbol):
    U/USDT:USDT-YYMMDD         linear dated future      U/USD:U-YYMMDD   inverse dated future
    U/USDC:USDC-YYMMDD-K-C|P   linear option (USDC)     U/USD:U-YYMMDD-K-C|P   inverse option
Options are on 1 coin; inverse option premiums are quoted in coin. Expiries are at 08:00 UTC.
Steps scale with the starting price, so a 60k coin trades in 0.001 at a 0.1 tick.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.config_sim import PositionConfig, SimConfig
from bot.core.instruments import Instrument, Kind, OptionType, Settlement

INVERSE_CONTRACT_USD = 10.0
INVERSE_OPTION_TICK = 0.0001  # coin
EXPIRY_HOUR_UTC = 8
DAY_MS = 86_400_000

_SYMBOL = re.compile(
    r"^(?P<u>[A-Z0-9]+)/(?P<q>[A-Z0-9]+)(?::(?P<s>[A-Z0-9]+))?"
    r"(?:-(?P<d>\d{6}))?(?:-(?P<k>\d+(?:\.\d+)?)-(?P<t>[CP]))?$"
)


@dataclass(frozen=True, slots=True)
class Spec:
    """An instrument before its steps and fees are known."""

    underlying: str
    kind: Kind
    settlement: Settlement
    expiry_ms: int | None = None
    strike: float | None = None
    option_type: OptionType | None = None


def _pow10_floor(x: float) -> float:
    return round(10.0 ** math.floor(math.log10(x)), 12)


def coin_amount_step(price: float) -> float:
    """Lot step for coin-sized contracts: worth 10-100 USD, never above 1 coin."""
    return min(1.0, _pow10_floor(100.0 / price))


def price_tick(price: float) -> float:
    """Price tick of about 0.1-1 bp of the price (0.1 at 60k, 0.01 at 3k)."""
    return _pow10_floor(price * 1e-5)


def expiry_ms_after(start_ms: int, days: float) -> int:
    """08:00 UTC on the date `days` after `start_ms`, pushed a day on when that is not later."""
    at = datetime.fromtimestamp((start_ms + days * DAY_MS) / 1000.0, tz=UTC)
    exp = at.replace(hour=EXPIRY_HOUR_UTC, minute=0, second=0, microsecond=0)
    if exp.timestamp() * 1000.0 <= start_ms:
        exp += timedelta(days=1)
    return int(exp.timestamp() * 1000)


def _yymmdd(expiry_ms: int) -> str:
    return datetime.fromtimestamp(expiry_ms / 1000.0, tz=UTC).strftime("%y%m%d")


def _strike_text(strike: float) -> str:
    if strike.is_integer():
        return str(int(strike))
    return format(strike, "f").rstrip("0").rstrip(".")


def format_symbol(spec: Spec) -> str:
    u = spec.underlying
    if spec.kind is Kind.SPOT:
        return f"{u}/USDT"
    if spec.settlement is Settlement.INVERSE:
        base = f"{u}/USD:{u}"
    elif spec.kind is Kind.OPTION:
        base = f"{u}/USDC:USDC"
    else:
        base = f"{u}/USDT:USDT"
    if spec.kind is Kind.PERP:
        return base
    assert spec.expiry_ms is not None
    base = f"{base}-{_yymmdd(spec.expiry_ms)}"
    if spec.kind is Kind.FUTURE:
        return base
    assert spec.strike is not None and spec.option_type is not None
    cp = "C" if spec.option_type is OptionType.CALL else "P"
    return f"{base}-{_strike_text(spec.strike)}-{cp}"


def parse_symbol(symbol: str) -> Spec | None:
    """The spec of a symbol in the simulator's scheme, or None when it is not one."""
    m = _SYMBOL.match(symbol)
    if m is None:
        return None
    u, q, s, d, k, t = (m.group(x) for x in "uqsdkt")
    if s is None:
        return Spec(u, Kind.SPOT, Settlement.LINEAR) if q == "USDT" and d is None else None
    if q == "USD" and s == u:
        settlement = Settlement.INVERSE
    elif q == s and (q == "USDC" if k else q == "USDT"):
        settlement = Settlement.LINEAR
    else:
        return None
    if d is None:
        return Spec(u, Kind.PERP, settlement) if k is None else None
    date = datetime.strptime(d, "%y%m%d").replace(hour=EXPIRY_HOUR_UTC, tzinfo=UTC)
    expiry = int(date.timestamp() * 1000)
    if k is None:
        return Spec(u, Kind.FUTURE, settlement, expiry_ms=expiry)
    ot = OptionType.CALL if t == "C" else OptionType.PUT
    return Spec(u, Kind.OPTION, settlement, expiry_ms=expiry, strike=float(k), option_type=ot)


def spec_for(pos: PositionConfig, start_ms: int) -> Spec:
    """The instrument a starting position describes (or names)."""
    if pos.symbol is not None:
        spec = parse_symbol(pos.symbol)
        if spec is None:
            raise ValueError(f"the simulator does not list {pos.symbol!r}")
        return spec
    assert pos.underlying is not None and pos.kind is not None  # the config validator ensures it
    kind = Kind(pos.kind)
    settlement = Settlement(pos.settlement)
    if kind is Kind.SPOT and settlement is Settlement.INVERSE:
        raise ValueError(f"{pos.underlying}: spot cannot be inverse")
    expiry = None
    if kind in (Kind.FUTURE, Kind.OPTION):
        assert pos.expiry_days is not None
        expiry = expiry_ms_after(start_ms, pos.expiry_days)
    if kind is Kind.OPTION:
        assert pos.option_type is not None
        return Spec(
            pos.underlying.upper(),
            kind,
            settlement,
            expiry_ms=expiry,
            strike=pos.strike,
            option_type=OptionType(pos.option_type),
        )
    return Spec(pos.underlying.upper(), kind, settlement, expiry_ms=expiry)


def symbol_for(pos: PositionConfig, start_ms: int) -> str:
    """The symbol a starting position is held in on a simulator started at `start_ms` (a given
    symbol comes back in its canonical spelling: strike 60000.0 as 60000)."""
    return format_symbol(spec_for(pos, start_ms))


def settle_currency(inst: Instrument) -> str:
    """The currency P&L, premiums and fees are paid in (the quote currency for spot)."""
    if inst.is_inverse:
        return inst.underlying
    return inst.quote


def make_instrument(spec: Spec, cfg: SimConfig) -> Instrument:
    und = cfg.underlyings.get(spec.underlying)
    if und is None:
        raise ValueError(f"no simulated underlying {spec.underlying!r} in sim.underlyings")
    symbol = format_symbol(spec)
    coin_step = coin_amount_step(und.price)
    tick = price_tick(und.price)
    inverse = spec.settlement is Settlement.INVERSE
    if spec.kind is Kind.OPTION:
        # Options trade in tens of the coin step (0.01 BTC); inverse premiums are coin.
        step = min(1.0, round(coin_step * 10.0, 12))
        size, quote = 1.0, "USD" if inverse else "USDC"
        tick = INVERSE_OPTION_TICK if inverse else tick
    elif inverse:
        step, size, quote = 1.0, INVERSE_CONTRACT_USD, "USD"
    else:
        step, size, quote = coin_step, 1.0, "USDT"
    return Instrument(
        symbol=symbol,
        underlying=spec.underlying,
        kind=spec.kind,
        settlement=spec.settlement,
        contract_size=size,
        quote=quote,
        expiry_ms=spec.expiry_ms,
        strike=spec.strike,
        option_type=spec.option_type,
        amount_step=step,
        price_step=tick,
        min_amount=step,
        maker_fee=cfg.maker_fee,
        taker_fee=cfg.taker_fee,
    )


def build_listing(
    cfg: SimConfig, positions: Iterable[PositionConfig], start_ms: int
) -> dict[str, Instrument]:
    """Every instrument the simulator lists for a run started at `start_ms`, by symbol."""
    specs: list[Spec] = []
    for u in sorted(cfg.underlyings):
        specs.append(Spec(u, Kind.SPOT, Settlement.LINEAR))
        specs.append(Spec(u, Kind.PERP, Settlement.LINEAR))
        specs.append(Spec(u, Kind.PERP, Settlement.INVERSE))
    specs.extend(spec_for(p, start_ms) for p in positions)
    listing: dict[str, Instrument] = {}
    for spec in specs:
        inst = make_instrument(spec, cfg)
        listing.setdefault(inst.symbol, inst)
    return listing
