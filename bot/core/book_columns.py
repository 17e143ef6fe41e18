"""The portfolio book's columns: the instruments of one underlying as numpy columns, with what
every exposure evaluation needs precomputed (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.core.instruments import Instrument, Kind, OptionType

HedgeView = Literal["usd", "coin"]
LineKey = tuple[str, str]  # (account, symbol): one line of the book
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Columns:
    """The instruments of one underlying as columns, built once per set of instruments.

    Besides the per-line columns it keeps what every evaluation needs precomputed: the option
    columns' indices and terms, and the delta-one lines' coin delta per contract split into
    linear (constant) and inverse (contract size over the price) parts."""

    underlying: str
    keys: tuple[LineKey, ...]
    is_spot: BoolArray
    is_option: BoolArray
    is_inverse: BoolArray
    is_call: BoolArray
    contract_size: FloatArray
    strike: FloatArray  # nan where not an option
    expiry_ms: npt.NDArray[np.int64]  # 0 where none
    opt: npt.NDArray[np.intp]  # column indices of the options
    linear_usd: FloatArray  # coin delta per contract of linear delta-one lines, "usd" view
    linear_coin: FloatArray  # the same with spot left out ("coin" view)
    inverse_usd: FloatArray  # contract size (USD) of inverse delta-one lines, 0 elsewhere
    # per line as plain Python values, for small books priced without numpy:
    # (is_option, contract_size, strike, expiry_ms, is_call, is_inverse, is_spot, log strike)
    terms: tuple[tuple[bool, float, float, int, bool, bool, bool, float], ...]
    # the option columns' terms, gathered once (an evaluation mostly prices every option)
    opt_strike: FloatArray
    opt_expiry_ms: npt.NDArray[np.int64]
    opt_call: BoolArray
    opt_inverse: FloatArray  # 1.0 for a coin-settled option, else 0.0
    opt_size: FloatArray

    @staticmethod
    def of(underlying: str, lines: Mapping[LineKey, Instrument]) -> Columns:
        # Sorted: sums over the columns then do not depend on the order lines were found in (a
        # set walked in hash order, which differs between processes), so runs are reproducible.
        keys = tuple(sorted(k for k, i in lines.items() if i.underlying == underlying))
        ins = [lines[k] for k in keys]
        is_spot = np.array([i.kind is Kind.SPOT for i in ins], dtype=bool)
        is_option = np.array([i.kind is Kind.OPTION for i in ins], dtype=bool)
        is_inverse = np.array([i.is_inverse for i in ins], dtype=bool)
        size = np.array([i.contract_size for i in ins], dtype=np.float64)
        one = ~is_option
        linear_usd = np.where(one & ~is_inverse, size, 0.0)
        opt = np.flatnonzero(is_option)
        strike = np.array([i.strike if i.strike else np.nan for i in ins], dtype=np.float64)
        expiry = np.array([i.expiry_ms or 0 for i in ins], dtype=np.int64)
        is_call = np.array([i.option_type is OptionType.CALL for i in ins], dtype=bool)
        return Columns(
            underlying=underlying,
            keys=keys,
            is_spot=is_spot,
            is_option=is_option,
            is_inverse=is_inverse,
            is_call=is_call,
            contract_size=size,
            strike=strike,
            expiry_ms=expiry,
            opt=opt,
            linear_usd=linear_usd,
            linear_coin=np.where(is_spot, 0.0, linear_usd),
            inverse_usd=np.where(one & is_inverse, size, 0.0),
            terms=tuple(
                (
                    i.kind is Kind.OPTION,
                    i.contract_size,
                    i.strike or math.nan,
                    i.expiry_ms or 0,
                    i.option_type is OptionType.CALL,
                    i.is_inverse,
                    i.kind is Kind.SPOT,
                    math.log(i.strike) if i.strike else math.nan,
                )
                for i in ins
            ),
            opt_strike=strike[opt],
            opt_expiry_ms=expiry[opt],
            opt_call=is_call[opt],
            opt_inverse=is_inverse[opt].astype(np.float64),
            opt_size=size[opt],
        )

    def quantities(self, qty: Mapping[LineKey, float]) -> FloatArray:
        return np.array([qty.get(k, 0.0) for k in self.keys], dtype=np.float64)

    def option_ivs(self, ivs: Mapping[LineKey, float], default: float) -> FloatArray:
        """IV of every column (nan where not an option), `default` where a line has none."""
        opt = zip(self.keys, self.is_option, strict=True)
        return np.array([ivs.get(k, default) if o else np.nan for k, o in opt], dtype=np.float64)
