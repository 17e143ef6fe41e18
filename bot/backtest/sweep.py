"""The sweep's pure parts: grids, settings per combination, the table, the efficient frontier and
the recommendation.

A grid is `path=a:b:n` (n values from a to b, both included) or `path=v1,v2,...`; the sweep runs
the cartesian product of its grids. A combination is applied to the config with the config's own
validation (`bot.config_set.with_file_value`, then the simulated exchange's listing, as
`load_settings` does); one that does not validate is skipped, with the reason, not run. A grid on
`<...>.policy.kind` replaces the whole policy section with that kind and the policy's other grid
values (the file's parameters belong to the file's kind), so such a sweep must grid every parameter
the kind requires.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.backtest.report import stats
from bot.config import ConfigError, Settings
from bot.config_checks import sim_problems
from bot.config_set import with_file_value

Combo = dict[str, Any]  # dotted setting -> value
# Each combination is a validated config held in memory: beyond this a grid is a typo.
MAX_COMBOS = 10_000


class GridError(ValueError):
    """A --grid that cannot be read: the message names the grid, the value and the rule."""


def _value(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def _is_range(rest: str) -> bool:
    """`a:b:n` (or a typo of one, to be refused as such); not a text value with a colon, like
    an instrument `BTC/USDT:USDT`, which has no number in it."""
    if ":" not in rest or "," in rest:
        return False
    return any(isinstance(_value(part), int | float) for part in rest.split(":"))


def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """`path=a:b:n` or `path=v1,v2,...` -> (path, values). A value may hold a colon
    (`BTC/USDT:USDT,ETH/USDT:USDT`); a single one, if it has no number (`BTC/USDT:USDT`)."""
    path, sep, rest = spec.partition("=")
    path = path.strip()
    where = f"--grid {spec!r}"
    if not sep or not path or not rest.strip():
        raise GridError(
            f"{where}: must be path=a:b:n or path=v1,v2,... (e.g. hedge.BTC.band=0.1:1:10)"
        )
    if any(not part for part in path.split(".")):
        raise GridError(f"{where}: setting path {path!r} has an empty part")
    if _is_range(rest):
        bits = rest.split(":")
        if len(bits) != 3:
            raise GridError(f"{where}: a range is a:b:n with three parts (got {rest!r})")
        try:
            a, b = float(bits[0]), float(bits[1])
        except ValueError:
            raise GridError(f"{where}: range ends must be numbers (got {rest!r})") from None
        try:
            n = int(bits[2])
        except ValueError:
            raise GridError(f"{where}: the count n must be an integer (got {bits[2]!r})") from None
        if n < 1:
            raise GridError(f"{where}: the count n must be >= 1 (got {n})")
        if n > MAX_COMBOS:
            raise GridError(f"{where}: the count n must be <= {MAX_COMBOS} (got {n})")
        if not (math.isfinite(a) and math.isfinite(b)):
            raise GridError(f"{where}: range ends must be finite (got {rest!r})")
        if n == 1:
            if a != b:
                raise GridError(f"{where}: one value (n = 1) needs a == b (got {a:g}:{b:g})")
            return path, [a]
        # Rounded so 0.1:1:10 gives 0.2, not 0.20000000000000001, in the table and the TOML.
        points = [round(a + (b - a) * i / (n - 1), 12) for i in range(n)]
        if not all(math.isfinite(v) for v in points):  # b - a overflows near the float limit
            raise GridError(f"{where}: the range's values must be finite (got {rest!r})")
        return path, points
    values = [_value(v) for v in rest.split(",")]
    if any(v == "" for v in values):
        raise GridError(f"{where}: an empty value in the list (got {rest!r})")
    if len({json.dumps(v) for v in values}) != len(values):
        raise GridError(f"{where}: a value is listed twice (got {rest!r})")
    return path, values


def combinations(grids: Sequence[tuple[str, list[Any]]]) -> list[Combo]:
    paths = [p for p, _ in grids]
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise GridError(f"--grid {dup}: given twice; give one grid per setting")
    if (n := math.prod(len(v) for _, v in grids)) > MAX_COMBOS:
        raise GridError(f"--grid: {n} combinations; the grids' product must be <= {MAX_COMBOS}")
    return [dict(zip(paths, vs, strict=True)) for vs in itertools.product(*(v for _, v in grids))]


def key(combo: Combo) -> str:
    """A combination's identity in the results file."""
    return json.dumps(combo, sort_keys=True)


def label(combo: Combo) -> str:
    """Short: the last part of each path, `band=0.1 kind=band`."""

    def show(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    return " ".join(f"{p.rsplit('.', 1)[-1]}={show(v)}" for p, v in combo.items()) or "config"


def apply(settings: Settings, combo: Combo, start_ms: int) -> Settings:
    """`settings` with the combination, validated as the config file is, the simulated
    exchange's listing at `start_ms` included (raises ConfigError). A policy whose `kind` is in
    the combination starts from that kind alone."""
    fresh = {p[: -len(".kind")] for p in combo if p.endswith(".policy.kind")}
    grouped: dict[str, dict[str, Any]] = {section: {} for section in fresh}
    for path, value in combo.items():
        section, _, name = path.rpartition(".")
        if section in grouped:
            grouped[section][name] = value
        else:
            settings = with_file_value(settings, path, value)
    for section, values in grouped.items():
        settings = with_file_value(settings, section, values)
    problems = sim_problems(settings, start_ms)  # e.g. a hedge instrument the sim does not list
    if problems:
        raise ConfigError(f"set {', '.join(combo)}", problems)
    return settings


@dataclass(frozen=True, slots=True)
class PathRow:
    """One finished (setting, path): what the table needs."""

    pnl_usd: float
    fees_usd: float
    slippage_usd: float
    orders: int


def table(
    combos: Sequence[Combo], done: Mapping[tuple[str, int], PathRow], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per combination whose paths are all finished, in grid order."""
    rows: list[dict[str, Any]] = []
    for combo in combos:
        k = key(combo)
        got = [done[(k, s)] for s in seeds if (k, s) in done]
        if len(got) < len(seeds):
            continue
        pnl = stats([g.pnl_usd for g in got])
        cost = [g.fees_usd + g.slippage_usd for g in got]
        rows.append(
            {
                "label": label(combo),
                "settings": combo,
                "paths": len(got),
                "cost_mean_usd": sum(cost) / len(cost),
                "fees_mean_usd": sum(g.fees_usd for g in got) / len(got),
                "slippage_mean_usd": sum(g.slippage_usd for g in got) / len(got),
                "orders_mean": sum(g.orders for g in got) / len(got),
                "pnl_mean_usd": pnl["mean"],
                "pnl_std_usd": pnl["std"],
                "pnl_cvar_5_usd": pnl["cvar_5"],
                "pnl_cvar_loss_usd": -pnl["cvar_5"],
                "recommended": False,
            }
        )
    mark_frontier(rows)
    return rows


def mark_frontier(rows: list[dict[str, Any]]) -> None:
    """`frontier`: no other row is at least as cheap and as low in std, and better in one;
    `frontier_cvar`: the same with the 5% CVaR loss as the risk."""
    for flag, risk in (("frontier", "pnl_std_usd"), ("frontier_cvar", "pnl_cvar_loss_usd")):
        for r in rows:
            c, s = r["cost_mean_usd"], r.get(risk, math.nan)
            r[flag] = math.isfinite(s) and not any(
                o is not r
                and o["cost_mean_usd"] <= c
                and o.get(risk, math.nan) <= s
                and (o["cost_mean_usd"] < c or o.get(risk, math.nan) < s)
                for o in rows
            )


def frontier_std_at(rows: Sequence[dict[str, Any]], cost_usd: float) -> float:
    """The hedged P&L std the rows' efficient frontier (`frontier`, see mark_frontier) reaches
    at a mean cost of `cost_usd`: linear between its points, nan outside their cost range.
    Compares a policy with another family of settings at equal cost."""
    pts = sorted((r["cost_mean_usd"], r["pnl_std_usd"]) for r in rows if r["frontier"])
    if not pts or not pts[0][0] <= cost_usd <= pts[-1][0]:
        return math.nan
    costs = [c for c, _ in pts]
    i = bisect.bisect_left(costs, cost_usd)
    if costs[i] == cost_usd:
        return float(pts[i][1])
    (c0, s0), (c1, s1) = pts[i - 1], pts[i]
    return float(s0 + (s1 - s0) * (cost_usd - c0) / (c1 - c0))


def recommend(rows: list[dict[str, Any]], budget_usd: float) -> dict[str, Any] | None:
    """The cheapest row whose hedged P&L std is within the budget (ties: lower std, then grid
    order); marks it `recommended`. None if no row fits."""
    fits = [(r["cost_mean_usd"], r["pnl_std_usd"], i) for i, r in enumerate(rows)]
    fits = [f for f in fits if f[1] <= budget_usd]
    for r in rows:
        r["recommended"] = False
    if not fits:
        return None
    best = rows[min(fits)[2]]
    best["recommended"] = True
    return best


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def toml_lines(combo: Combo) -> list[str]:
    """The combination as config lines to paste, grouped by table."""
    by_table: dict[str, list[str]] = {}
    for path, value in combo.items():
        section, _, name = path.rpartition(".")
        by_table.setdefault(section, []).append(f"{name} = {_toml(value)}")
    out: list[str] = []
    for section, lines in by_table.items():
        out += [f"[{section}]", *lines] if section else lines
    return out
