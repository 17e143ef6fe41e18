"""`hedgebot sweep`: the backtest over a grid of settings on the same seeded paths, a table of
cost against risk, the efficient frontier, and the cheapest setting within a risk budget."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.backtest.cli import (
    START_MS,
    TICK_MS,
    market_arguments,
    path_usage,
    recorded,
    replay_spec,
    simulated_settings,
    with_model,
)
from bot.cli_checks import negatives_are_values, out_folder
from bot.cli_lazy import lazy

if TYPE_CHECKING:
    from bot.backtest.path import PathSpec
    from bot.backtest.sweep import PathRow
    from bot.backtest.sweep_run import Work
    from bot.config import Settings

MAX_PAIRS = 1_000_000  # (setting, path) runs in one sweep

COLUMNS = (
    "label",
    "paths",
    "cost_mean_usd",
    "fees_mean_usd",
    "slippage_mean_usd",
    "orders_mean",
    "pnl_mean_usd",
    "pnl_std_usd",
    "pnl_cvar_5_usd",
    "frontier",
    "frontier_cvar",
    "recommended",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sweep",
        help="backtest a grid of settings on the same paths: cost against risk, the frontier",
        description="Runs every combination of the --grid values on the same seeded paths "
        "(common random numbers), on local processes or a Dask cluster, and writes sweep.csv, "
        "sweep.json and sweep.png (the lab extra) to --out. Finished paths are kept in "
        "results.jsonl: a re-run with the same arguments runs only what is missing.",
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=A:B:N|PATH=V1,V2",
        help="a setting and its values, e.g. hedge.BTC.policy.band=0.1:1.0:10 (repeatable)",
    )
    p.add_argument("--paths", type=int, default=20, help="seeded paths per setting (20)")
    p.add_argument(
        "--days",
        type=float,
        default=7.0,
        help="days per path (7); with --data: the length of each path's window of the file",
    )
    p.add_argument("--seed", type=int, default=None, help="first path's seed (config sim.seed)")
    market_arguments(p)
    p.add_argument("--jobs", type=int, default=None, help="local processes (one per core)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) instead")
    p.add_argument("--out", type=Path, default=Path("sweep-out"), help="result folder")
    p.add_argument(
        "--risk-budget-usd",
        type=float,
        default=None,
        help="recommend the cheapest setting whose hedged P&L std is within this",
    )
    negatives_are_values(p)
    p.set_defaults(func=lazy("bot.backtest.sweep_cli:cmd_sweep"))


def _usage(args: argparse.Namespace) -> str | None:
    if not args.grid:
        return "--grid: give at least one (e.g. --grid 'hedge.BTC.policy.band=0.1:1.0:10')"
    if (problem := path_usage(args)) is not None:
        return problem
    if args.risk_budget_usd is not None and not args.risk_budget_usd >= 0:
        return f"--risk-budget-usd: must be >= 0 (got {args.risk_budget_usd})"
    if args.scheduler is not None:
        return scheduler_usage(args.scheduler)
    return None


SCHEMES = ("tcp", "tls", "ws", "wss")  # what a Dask scheduler listens on
PROBE_S = 5.0  # how long a silent --scheduler host is waited for


def scheduler_usage(address: str) -> str | None:
    """What is wrong with a --scheduler address, or None; an unreachable one fails fast
    (refused or unknown host at once, a silent one after PROBE_S), not after Dask's timeout."""
    import socket

    m = re.fullmatch(r"([a-z]+)://(\[[^\]]+\]|[^:/\s\[\]]+):(\d{1,5})/?", address)
    if m is None or m.group(1) not in SCHEMES or not 1 <= int(m.group(3)) <= 65535:
        return (
            f"--scheduler: must be an address like tcp://HOST:PORT ({'/'.join(SCHEMES)}, "
            f"port 1-65535) (got {address!r})"
        )
    host, port = m.group(2).strip("[]"), int(m.group(3))
    try:
        socket.create_connection((host, port), timeout=PROBE_S).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        return f"--scheduler: cannot reach {host}:{port} ({why}) (got {address!r})"
    return None


def cmd_sweep(args: argparse.Namespace) -> int:
    from bot.backtest import sweep
    from bot.config import ConfigError

    problem = _usage(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        combos = sweep.combinations([sweep.parse_grid(g) for g in args.grid])
    except sweep.GridError as e:
        print(e, file=sys.stderr)
        return 2
    if len(combos) * args.paths > MAX_PAIRS:
        print(
            f"--paths: {len(combos)} combination(s) x {args.paths} path(s) is "
            f"{len(combos) * args.paths} runs; must be <= {MAX_PAIRS}",
            file=sys.stderr,
        )
        return 2
    settings = simulated_settings(args, "a sweep")
    if settings is None:
        return 2
    if (problem := out_folder(args.out)) is not None:
        print(problem, file=sys.stderr)
        return 2
    if args.market is not None:
        settings = with_model(settings, args.market)
    runnable, skipped = [], []
    for combo in combos:
        try:
            runnable.append((combo, sweep.apply(settings, combo, START_MS)))
        except ConfigError as e:
            skipped.append({"label": sweep.label(combo), "settings": combo, "reason": e.render()})
    for s in skipped:
        print(f"skipped {s['label']}: {s['reason']}", file=sys.stderr)
    if not runnable:
        print("sweep: no combination of the grid validates; nothing to run", file=sys.stderr)
        return 2
    return _run(args, settings, runnable, skipped)


def _run(
    args: argparse.Namespace,
    settings: Settings,
    runnable: list[tuple[dict[str, Any], Settings]],
    skipped: list[dict[str, Any]],
) -> int:
    from bot import logs
    from bot.backtest import sweep, sweep_run
    from bot.backtest.data import DataError

    logs.configure("error", "console")
    try:
        paths, market = _paths(args, settings)
    except DataError as e:
        print(f"--data: {e}", file=sys.stderr)
        return 2
    spec = paths[0]
    rid = sweep_run.run_id(args.config.read_text(encoding="utf-8"), spec, market)
    try:
        done = sweep_run.load_done(args.out, rid)
    except OSError as e:
        print(f"--out: cannot read {args.out / sweep_run.RESULTS} ({e.strerror})", file=sys.stderr)
        return 2
    work = [
        sweep_run.Work(sweep.key(combo), s, p)
        for combo, s in runnable
        for p in paths
        if (sweep.key(combo), p.seed) not in done
    ]
    total = len(runnable) * len(paths)
    if total > len(work):
        print(f"sweep: {total - len(work)} of {total} path(s) already done in {args.out}")
    stopped = _run_paths(args, work, total, rid, done)
    if stopped is not None:
        return stopped
    rows = sweep.table([c for c, _ in runnable], done, [p.seed for p in paths])
    return _report(args, rows, skipped, paths, market)


def _run_paths(
    args: argparse.Namespace,
    work: list[Work],
    total: int,
    rid: str,
    done: dict[tuple[str, int], PathRow],
) -> int | None:
    """Run the paths not done yet under a progress bar, adding each result to `done`; the exit
    code when the run stops short (interrupted, scheduler unreachable), else None."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bot.backtest import sweep_run

    jobs = args.jobs or min(len(work) or 1, os.cpu_count() or 1)
    columns = (TextColumn("[bold]paths"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    finished = {"n": 0}

    def advance() -> None:
        finished["n"] += 1
        progress.advance(task)

    try:
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("paths", total=total, completed=total - len(work))
            done.update(sweep_run.run_all(work, args.out, rid, jobs, args.scheduler, advance))
    except OSError as e:
        if args.scheduler is not None:
            print(f"--scheduler: cannot use {args.scheduler} ({e})", file=sys.stderr)
            return 2
        kept = total - len(work) + finished["n"]
        where = args.out / sweep_run.RESULTS
        print(f"sweep: stopped: {e}; {kept} of {total} path(s) kept in {where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = total - len(work) + finished["n"]
        print(
            f"sweep: interrupted; {kept} of {total} path(s) kept in "
            f"{args.out / sweep_run.RESULTS}: run the same command to resume",
            file=sys.stderr,
        )
        return 130
    return None


def _report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    paths: list[PathSpec],
    market: str,
) -> int:
    """Write and print the table, the recommendation and the picture; 1 when a risk budget was
    given and no setting fits it."""
    from bot.backtest import plots, sweep

    best = None
    if args.risk_budget_usd is not None:
        best = sweep.recommend(rows, args.risk_budget_usd)
    _write(args, rows, skipped, paths, best, market)
    _print(rows, best, args.risk_budget_usd)
    why = plots.missing()
    if why is None:
        png = plots.frontier_png(args.out / "sweep.png", rows, f"sweep: {args.config.name}")
        print(f"  picture  {png}")
    else:
        print(f"  picture  none: {why}")
    return 1 if args.risk_budget_usd is not None and best is None else 0


def _paths(args: argparse.Namespace, settings: Settings) -> tuple[list[PathSpec], str]:
    """Every setting's paths and the market's identity (for the run id and sweep.json). A
    synthetic market: seeds seed + i on one span. A file: path i replays the i-th of --paths
    consecutive --days windows of it (seed + i for the order flow's draws)."""
    from bot.backtest import schedule, sweep_run
    from bot.backtest.path import PathSpec

    seed = settings.sim.seed if args.seed is None else args.seed
    if args.data is None:
        spec = PathSpec(seed, args.days, args.tick_ms or TICK_MS, START_MS)
        return sweep_run.specs(spec, args.paths), f"model:{args.market or 'config'}"
    rec = recorded(args, settings)
    spans = schedule.windows(rec, args.days, args.paths, str(args.data))
    paths = [replay_spec(args, rec, seed + i, a, b) for i, (a, b) in enumerate(spans)]
    return paths, f"data:{args.data.name}:{sweep_run.digest(args.data)}"


def _write(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    paths: list[PathSpec],
    best: dict[str, Any] | None,
    market: str,
) -> None:
    spec = paths[0]
    doc = {
        "config": args.config.name,
        "market": market,
        "seed": spec.seed,
        "paths": args.paths,
        "days": spec.days,
        "tick_ms": spec.tick_ms,
        "risk_budget_usd": args.risk_budget_usd,
        "recommended": best["settings"] if best else None,
        "rows": rows,
        "skipped": skipped,
    }
    if spec.data is not None:  # each path's window of the file
        from bot.backtest.schedule import DAY_MS

        doc["windows_ms"] = [[p.start_ms, p.start_ms + round(p.days * DAY_MS)] for p in paths]
    (args.out / "sweep.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    names = sorted({p for r in rows for p in r["settings"]})
    flat = [[*(r["settings"].get(n, "") for n in names), *(r[c] for c in COLUMNS)] for r in rows]
    with (args.out / "sweep.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*names, *COLUMNS])
        w.writerows(flat)
    try:  # for dataframes (pandas, Dask, Polars), where pyarrow is installed
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    header = [*names, *COLUMNS]
    columns: dict[str, list[Any]] = {}
    for i, h in enumerate(header):
        values = [x[i] for x in flat]
        mixed = len({type(v) for v in values}) > 1  # a column has one type: mixed goes as text
        columns[h] = [str(v) for v in values] if mixed else values
    pq.write_table(pa.table(columns), args.out / "sweep.parquet")


def _print(rows: list[dict[str, Any]], best: dict[str, Any] | None, budget: float | None) -> None:
    from bot.backtest import sweep

    width = max(len(r["label"]) for r in rows) if rows else 5
    print(f"  {'setting':<{width}}  {'cost':>10}  {'P&L std':>10}  {'5% CVaR':>10}  frontier")
    for r in rows:
        mark = ",".join(n for n, f in (("std", "frontier"), ("cvar", "frontier_cvar")) if r[f])
        print(
            f"  {r['label']:<{width}}  {r['cost_mean_usd']:>10,.2f}  {r['pnl_std_usd']:>10,.2f}"
            f"  {r['pnl_cvar_5_usd']:>10,.2f}  {mark}"
        )
    if budget is None:
        return
    if best is None:
        low = min(rows, key=lambda r: r["pnl_std_usd"])
        print(
            f"no setting has a hedged P&L std within {budget:,.2f} USD; the lowest is "
            f"{low['label']} ({low['pnl_std_usd']:,.2f})"
        )
        return
    print(
        f"recommended within a std of {budget:,.2f} USD: {best['label']} "
        f"(cost {best['cost_mean_usd']:,.2f}, std {best['pnl_std_usd']:,.2f}); in the config:"
    )
    for line in sweep.toml_lines(best["settings"]):
        print(f"  {line}")
