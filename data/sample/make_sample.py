"""Writes btc-1m.csv: two days of one-minute BTC OHLCV bars from the simulated exchange's
heston model (seed 11, start 2026-01-01T00:00Z, 60 000 USD, vol 0.6), stepped every 10 s.

    python data/sample/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.venues.sim.market import UnderlyingParams
from bot.venues.sim.models import ModelStepper

START_MS = 1_767_225_600_000
STEP_MS = 10_000
BARS = 2 * 24 * 60


def main() -> None:
    p = UnderlyingParams(vol=0.6, model="heston", kappa=2.0, theta=0.36, xi=0.8, rho=-0.5, v0=0.36)
    model = ModelStepper({"BTC": p}, ["BTC"])
    rng = np.random.default_rng(11)
    price, t = 60_000.0, START_MS
    lines = ["timestamp,open,high,low,close,volume"]
    for bar in range(BARS):
        o = hi = lo = price
        for _ in range(60_000 // STEP_MS):
            price = model.advance([price], t, t + STEP_MS, rng)[0]
            t += STEP_MS
            hi, lo = max(hi, price), min(lo, price)
        volume = round(float(rng.gamma(2.0, 5.0)), 3)
        ts = START_MS + bar * 60_000
        lines.append(f"{ts},{o:.2f},{hi:.2f},{lo:.2f},{price:.2f},{volume}")
    Path(__file__).with_name("btc-1m.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
