"""Console lines round numbers to what they mean; JSON lines keep full precision (bot/logs.py)."""

from __future__ import annotations

import io
import json

import structlog

from bot import logs


def test_round_value_by_key_name_and_instrument_steps() -> None:
    logs.register_steps([("ETH/USDT:USDT", 0.05, 0.01)])
    assert logs.round_value("price", 3012.3456789, "ETH/USDT:USDT") == 3012.35
    assert logs.round_value("mid", 3012.3456789, "ETH/USDT:USDT") == 3012.35
    assert logs.round_value("amount", 1.23456, "ETH/USDT:USDT") == 1.23
    assert logs.round_value("price", 3012.3456789) == 3012.3457  # unknown symbol: 8 digits
    assert logs.round_value("delta_usd", 1234.5678) == 1234.57
    assert logs.round_value("fees_usd", 0.004999) == 0.0
    assert logs.round_value("delta_coin", 0.123456789) == 0.123457
    assert logs.round_value("slippage_bps", 3.14159) == 3.1
    assert logs.round_value("gamma", 1.23456789e-5) == 1.23457e-5
    assert logs.round_value("x", float("nan")) != logs.round_value("x", float("nan"))


def test_processor_rounds_nested_values_and_renders_lines_held() -> None:
    event = {
        "event": "book.loaded",
        "delta": {"BTC": {"delta_usd": 17553.532999999, "delta_coin": 0.29311345}},
        "lines": [
            {"account": "sim", "symbol": "ETH/USDT:USDT", "qty": 4.0000000001},
            {"account": "ext", "symbol": "ETH-C", "qty": -30.0},
        ],
        "ts_ms": 1796023857604,
    }
    out = logs.round_for_humans(None, "info", event)
    assert out["delta"] == {"BTC": {"delta_usd": 17553.53, "delta_coin": 0.293113}}
    assert out["lines"] == "sim:ETH/USDT:USDT +4.0, ext:ETH-C -30.0"
    assert out["ts_ms"] == 1796023857604


def test_console_rounds_json_does_not() -> None:
    for fmt, text in (("console", "delta_usd=1234.57"), ("json", "1234.56789")):
        buf = io.StringIO()
        logs.configure("info", fmt, buf)
        structlog.get_logger("t").info("daemon.status", delta_usd=1234.56789)
        assert text in buf.getvalue(), buf.getvalue()
    assert json.loads(buf.getvalue())["delta_usd"] == 1234.56789
    logs.configure("info", "json")
