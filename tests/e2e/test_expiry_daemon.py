"""An option expiring under the running daemon (`run --clock virtual`, the simulated exchange
settling it): its ticker stream ends with it. It used to be resubscribed every few seconds (a
`stream.error` alert each time, the venue refusing the expired symbol) until its feed went stale
and halted the underlying for good: one expiry stopped the hedging of the whole book.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import named, run_bot

START_MS = 1_767_250_800_000  # 2026-01-01T07:00Z: the short put expires at 08:00 that day

CONFIG = """
bot_id = "e2e-expiry"
[log]
level = "info"
[engine]
hedge_view = "coin"
stale_after_s = 60
[risk]
max_order_notional_usd = 5_000_000
max_orders_per_minute = 30
[journal]
path = "{journal}"
[sim]
seed = 5
tick_ms = 10000
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.6
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "put"
strike = 70_000
expiry_days = 0.01
qty = -10
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 3
qty = -10
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ kind = "band", band = 0.5 }}
"""


def test_an_expiry_ends_its_stream_and_hedging_goes_on(tmp_path: Path) -> None:
    cfg = tmp_path / "expiry.toml"
    cfg.write_text(CONFIG.format(journal=tmp_path / "journal.sqlite"))
    argv = ["run", "--config", str(cfg), "--clock", "virtual", "--start-ms", str(START_MS)]
    code, events, stderr = run_bot([*argv, "--duration", "7200", "--log-format", "json"])
    assert code == 0, stderr
    (expired,) = named(events, "sim.instrument_expired")
    put = expired["symbol"]
    (ended,) = named(events, "stream.ended")
    assert (ended["stream"], ended["reason"]) == (f"ticker:{put}", "expired")
    assert not named(events, "stream.error")
    assert not named(events, "trading.halted")
    # The deep in-the-money put's hedge is unwound once its settlement shows: an order after
    # the expiry, and the book's delta back in the band at the end.
    after = [e for e in named(events, "order.sent") if e["ts_ms"] >= START_MS + 3_600_000]
    assert after, "nothing traded after the expiry"
    (summary,) = named(events, "daemon.summary")
    assert abs(summary["delta"]["BTC"]["delta_coin"]) <= 0.5 + 0.01
