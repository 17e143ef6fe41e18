"""Routing config ([[hedge.<U>.candidates]], [routing], [sim.accounts.<name>]): every bad input is
refused with the field, the value and the rule, in-process and through `hedgebot check-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from tests.helpers import ROOT, clean_env

BASE = """
[accounts.a]
exchange = "sim"
[accounts.b]
exchange = "sim"
[hedge.BTC]
account = "a"
instrument = "BTC/USDT:USDT"
policy = { kind = "band", band = 0.5 }
"""

CHEAP = '[[hedge.BTC.candidates]]\naccount = "a"\ninstrument = "BTC/USDT:USDT"\n'


def candidate(account: str, instrument: str, limit: str = "max_position_coin = 2") -> str:
    return (
        f'[[hedge.BTC.candidates]]\naccount = "{account}"\ninstrument = "{instrument}"\n{limit}\n'
    )


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(BASE + text)
    with pytest.raises(ConfigError) as e:
        load_settings(path, env={})
    return e.value.render()


def test_a_valid_routing_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        BASE
        + candidate("a", "BTC/USDT:USDT")
        + candidate("B", "BTC/USD:BTC", "max_position_usd = 500000")
        + "[routing]\nholding_horizon_h = 24\n"
        + "[sim.accounts.b]\ntaker_fee = 0.0001\nfunding_rate = -0.0003\n"
    )
    s = load_settings(path, env={})
    h = s.hedge["BTC"]
    assert [(c.account, c.instrument) for c in h.candidates] == [
        ("a", "BTC/USDT:USDT"),
        ("b", "BTC/USD:BTC"),  # account names are lower case, as everywhere
    ]
    assert h.candidates[1].limit_coin(50_000.0) == 10.0
    assert s.routing.holding_horizon_h == 24
    assert s.sim.for_account("b").taker_fee == 0.0001
    assert s.sim.for_account("b").funding_rate == -0.0003
    assert s.sim.for_account("a") == s.sim


async def test_simulated_funding_by_account_and_symbol(tmp_path: Path) -> None:
    from bot.clock import LiveClock
    from bot.venues.base import VenueRejected
    from bot.venues.sim import SimVenue

    path = tmp_path / "c.toml"
    path.write_text(
        BASE
        + "[sim]\nfunding_rate = 0.0001\n"
        + '[sim.funding_rates]\n"BTC/USD:BTC" = -0.0002\n'
        + '[sim.accounts.b]\nfunding_rates = { "BTC/USDT:USDT" = 0.0004 }\n'
    )
    s = load_settings(path, env={})
    clock = LiveClock()
    a = SimVenue("a", s.sim.for_account("a"), [], clock, run_market=False)
    b = SimVenue("b", s.sim.for_account("b"), [], clock, run_market=False)
    assert (await a.fetch_funding_rate("BTC/USDT:USDT")).rate == 0.0001  # every perp
    assert (await a.fetch_funding_rate("BTC/USD:BTC")).rate == -0.0002  # by symbol
    assert (await b.fetch_funding_rate("BTC/USDT:USDT")).rate == 0.0004  # the account's own
    assert (await b.fetch_funding_rate("BTC/USD:BTC")).rate == 0.0001  # its map replaces [sim]'s
    with pytest.raises(VenueRejected, match="not a perpetual"):
        await a.fetch_funding_rate("BTC/USDT")


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        (candidate("a", "BTC/USDT:USDT") + candidate("zz", "BTC/USDT:USDT"),
         "hedge.BTC.candidates.1.account", "no account named 'zz'"),
        (candidate("a", "BTC/USDT:USDT") * 2, "hedge.BTC", "listed twice: a:BTC/USDT:USDT"),
        (candidate("b", "BTC/USDT:USDT"), "hedge.BTC", "must include the hedge's own"),
        (candidate("a", "BTC/USDT:USDT", ""), "hedge.BTC.candidates.0", "exactly one of"),
        (candidate("a", "BTC/USDT:USDT", "max_position_coin = 1\nmax_position_usd = 1"),
         "hedge.BTC.candidates.0", "exactly one of"),
        (candidate("a", "BTC/USDT:USDT", "max_position_coin = 0"),
         "hedge.BTC.candidates.0.max_position_coin", "greater than 0"),
        (candidate("a", "BTC/USDT:USDT", "max_position_usd = -5"),
         "hedge.BTC.candidates.0.max_position_usd", "greater than 0"),
        (candidate("a", "BTC/USDT:USDT") + candidate("b", "ETH/USDT:USDT"),
         "hedge.BTC.candidates.1.instrument", "not listed by the simulated exchange"),
        ("[sim.accounts.nope]\ntaker_fee = 0.001\n", "sim.accounts.nope", "no simulated account"),
        ("[sim.accounts.a]\nfunding_rate = 0.5\n", "sim.accounts.a.funding_rate", "0.05"),
        ("[routing]\nholding_horizon_h = -1\n", "routing.holding_horizon_h", "greater than"),
        ("[routing]\nfunding_refresh_s = 0\n", "routing.funding_refresh_s", "greater than 0"),
        ('[sim.funding_rates]\n"BTC/USDT" = 0.0001\n', "sim.funding_rates.BTC/USDT",
         "not a perpetual the simulated exchange lists"),
        ('[sim.accounts.b.funding_rates]\n"ETH/USDT:USDT" = 0.0001\n',
         "sim.accounts.b.funding_rates.ETH/USDT:USDT", "not a perpetual"),
        ('[sim.funding_rates]\n"BTC/USD:BTC" = 1.0\n', "sim.funding_rates.BTC/USD:BTC",
         "less than or equal to 0.05"),
    ],
)  # fmt: skip
def test_bad_routing_config_names_field_and_rule(
    tmp_path: Path, text: str, field: str, rule: str
) -> None:
    msg = refused(tmp_path, text)
    assert field in msg and rule in msg, msg


def test_spot_is_a_delta_one_candidate_but_an_option_is_not(tmp_path: Path) -> None:
    """Spot is allowed (delta one); an option of the underlying is refused by its listing."""
    path = tmp_path / "spot.toml"
    path.write_text(BASE + candidate("a", "BTC/USDT:USDT") + candidate("b", "BTC/USDT"))
    assert len(load_settings(path, env={}).hedge["BTC"].candidates) == 2
    opt = "BTC/USDC:USDC-261225-60000-C"
    msg = refused(tmp_path, candidate("a", "BTC/USDT:USDT") + candidate("b", opt))
    assert "hedge.BTC.candidates.1.instrument" in msg and "not listed" in msg


def test_check_config_refuses_a_bad_candidate(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE + candidate("a", "BTC/USDT:USDT") + candidate("ghost", "BTC/USDT:USDT"))
    r = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )
    assert r.returncode == 2
    assert "hedge.BTC.candidates.1.account" in r.stderr + r.stdout
    assert "no account named 'ghost'" in r.stderr + r.stdout


def test_reload_applies_new_limits_and_refuses_changed_candidates(tmp_path: Path) -> None:
    """Limits apply at a reload; adding or removing a candidate needs a restart (its streams)."""
    from bot.clock import LiveClock
    from bot.control import CommandError
    from bot.daemon import make_venues
    from bot.engine import Engine
    from bot.events import EventBus
    from tests.helpers import Sink

    path = tmp_path / "c.toml"
    path.write_text(BASE + candidate("a", "BTC/USDT:USDT") + candidate("b", "BTC/USDT:USDT"))
    settings = load_settings(path, env={})
    clock = LiveClock()
    engine = Engine(settings, make_venues(settings, clock), clock, EventBus(Sink()), path)
    path.write_text(
        BASE + candidate("a", "BTC/USDT:USDT", "max_position_coin = 7")
        + candidate("b", "BTC/USDT:USDT")
    )  # fmt: skip
    reply = engine.controls.reload()
    assert "hedge.BTC.candidates" in str(reply)
    assert engine.settings.hedge["BTC"].candidates[0].max_position_coin == 7
    path.write_text(BASE + candidate("a", "BTC/USDT:USDT"))
    with pytest.raises(CommandError, match="routing candidates; restart"):
        engine.controls.reload()
    assert len(engine.settings.hedge["BTC"].candidates) == 2


def test_every_candidate_is_a_line_the_daemon_checks_records_and_flattens(tmp_path: Path) -> None:
    """The markets a candidate trades are checked at start (`hedgebot markets` and the
    plausibility rules) and recorded (`hedgebot record`) like the hedge instrument's."""
    from bot.io.record import Target, targets
    from bot.venues.ccxt_setup import symbols_for

    path = tmp_path / "c.toml"
    path.write_text(
        BASE.replace('[accounts.b]\nexchange = "sim"', '[accounts.b]\nexchange = "deribit"')
        + candidate("a", "BTC/USDT:USDT")
        + candidate("b", "BTC/USD:BTC")
    )
    s = load_settings(path, env={})
    assert s.hedge["BTC"].lines() == [("a", "BTC/USDT:USDT"), ("b", "BTC/USD:BTC")]
    assert symbols_for(s, "b") == {"BTC/USD:BTC"}
    assert targets(s) == [Target("b", "BTC/USD:BTC")]  # real-exchange accounts only
