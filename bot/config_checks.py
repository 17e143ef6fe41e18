"""Checks of a valid config that need the simulated exchange's listing rules or the file system:
what `run` would refuse (or fail on) at start-up and the config alone decides, so
`check-config` refuses it too."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Settings
from bot.config_errors import Problem, show
from bot.core.instruments import Instrument, Kind
from bot.venues.sim.listing import build_listing, make_instrument, spec_for


def sim_problems(settings: Settings, start_ms: int) -> list[Problem]:
    """Starting positions the simulator cannot list, and hedge instruments it does not list as
    a delta-one contract of their underlying, for accounts on the simulated exchange."""
    sim_accounts = {n for n, a in settings.accounts.items() if a.exchange == "sim"}
    problems: list[Problem] = []
    listed = []
    for i, p in enumerate(settings.positions):
        if p.account not in sim_accounts:
            continue
        try:
            make_instrument(spec_for(p, start_ms), settings.sim)
        except (ValueError, OverflowError, OSError) as e:  # the listing's own words
            where = f"positions.{i}"
            problems.append((where, show(p.symbol or p.underlying, where), str(e)))
            continue
        listed.append(p)
    if problems:
        return problems
    listing = build_listing(settings.sim, listed, start_ms)
    for u, h in settings.hedge.items():
        lines = [(h.account, h.instrument, f"hedge.{u}.instrument")]
        lines += [
            (c.account, c.instrument, f"hedge.{u}.candidates.{i}.instrument")
            for i, c in enumerate(h.candidates)
        ]
        for account, symbol, where in lines:
            if account not in sim_accounts:
                continue
            ins = listing.get(symbol)
            if ins is None:
                rule = (
                    f"not listed by the simulated exchange (it lists: {', '.join(sorted(listing))})"
                )
                problems.append((where, show(symbol, where), rule))
            elif ins.kind is Kind.OPTION or ins.underlying != u:
                problems.append((where, show(symbol, where), f"not a delta-one {u} contract"))
    return problems + _funding_problems(settings, listing)


def _funding_problems(settings: Settings, listing: Mapping[str, Instrument]) -> list[Problem]:
    """Funding rates given for symbols the simulated exchange does not list as a perp."""
    where_rates = [("sim.funding_rates", settings.sim.funding_rates)]
    where_rates += [
        (f"sim.accounts.{name}.funding_rates", acc.funding_rates or {})
        for name, acc in settings.sim.accounts.items()
    ]
    problems: list[Problem] = []
    perps = sorted(s for s, i in listing.items() if i.kind is Kind.PERP)
    for where, rates in where_rates:
        for symbol in rates:
            if symbol not in perps:
                rule = (
                    f"not a perpetual the simulated exchange lists (it lists: {', '.join(perps)})"
                )
                problems.append((f"{where}.{symbol}", show(symbol, where), rule))
    return problems


def file_problems(settings: Settings) -> list[Problem]:
    """TLS files the MQTT bridge would fail to load on every connection attempt."""
    m = settings.mqtt
    if not m.enabled:
        return []
    files = {"mqtt.ca_file": m.ca_file, "mqtt.cert_file": m.cert_file, "mqtt.key_file": m.key_file}
    return [
        (where, show(str(path), where), "file not found (or not a file)")
        for where, path in files.items()
        if path is not None and not path.is_file()
    ]
