"""The daemon: builds venues, clock, sinks and engine from the settings and runs until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import structlog

from bot.clock import Clock, LiveClock
from bot.config import ConfigError, Settings, paths_of
from bot.engine import Engine
from bot.events import EventBus, LogSink
from bot.io.health import Health
from bot.io.journal import Journal
from bot.io.journal_lock import JournalLock
from bot.io.metrics import Metrics, refresh_forever, serve
from bot.io.mqtt import MqttBridge
from bot.io.mqtt_schema_in import ExternalPositionIn
from bot.io.systemd import Notifier, watchdog_forever
from bot.operator import OperatorControls
from bot.shell.config_watch import watch_config
from bot.tasks import cancel_all
from bot.venues.base import Venue
from bot.venues.sim import saved_clock_ms

log = structlog.get_logger("hedgebot.daemon")


def make_clock(settings: Settings) -> Clock:
    """Simulated-only runs may go faster than real time; anything touching a real venue may not."""
    if all(a.exchange == "sim" for a in settings.accounts.values()):
        # A persisted simulated exchange resumes at its own saved time, not the wall time:
        # at speed > 1 simulated time is ahead of the wall clock.
        state = settings.sim.state_file
        start = saved_clock_ms(state) if state is not None and state.exists() else None
        return LiveClock(settings.sim.speed, start_ms=start)
    return LiveClock()


def make_venues(settings: Settings, clock: Clock) -> dict[str, Venue]:
    """One venue per account, by exchange and mode:
    - exchange "sim": the simulated exchange (its own synthetic market), starting positions opened;
    - a real exchange in mode "paper": PaperVenue, live public data from a keyless CcxtVenue and
      fills simulated by the simulated exchange's matching code, starting positions opened;
    - "testnet" / "live": CcxtVenue, the exchange's own test system or real orders. Starting
      positions in the config are refused there: the exchange holds the real ones."""
    from bot.venues.sim import SimVenue

    venues: dict[str, Venue] = {}
    for name, acc in settings.accounts.items():
        positions = [p for p in settings.positions if p.account == name]
        if acc.exchange == "sim":
            venues[name] = SimVenue(name, settings.sim.for_account(name), positions, clock)
            continue
        from bot.venues.ccxt_setup import symbols_for
        from bot.venues.ccxt_venue import CcxtVenue

        required = symbols_for(settings, name)  # their markets must pass the plausibility rules

        if acc.mode == "paper":
            from bot.venues.paper import PaperVenue

            venues[name] = PaperVenue(
                name,
                CcxtVenue(name, acc, required=required),
                positions,
                acc.paper_balances,
                clock,
                book_max_age_s=settings.execution.book_max_age_s,
            )
        elif positions:
            raise ConfigError(
                "positions",
                [
                    (
                        f"positions[account={name}]",
                        str(len(positions)),
                        f"starting positions are for sim and paper accounts; {name!r} is "
                        f"{acc.mode} on {acc.exchange}, whose positions come from the exchange",
                    )
                ],
            )
        else:
            venues[name] = CcxtVenue(name, acc, required=required)
    return venues


async def run_daemon(
    settings: Settings,
    config_path: Path | None = None,
    secrets_file: Path | None = None,
    duration_s: float | None = None,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Run until SIGINT/SIGTERM or `duration_s` (of the daemon's clock); a second signal exits
    at once without the clean shutdown. `clock`: by default live (see make_clock)."""
    # Absolute, so an operator can check that `hedgebot halt` writes the file watched here.
    log.info("daemon.paths", **paths_of(settings))
    clock = clock if clock is not None else make_clock(settings)
    settings.journal.path.parent.mkdir(parents=True, exist_ok=True)
    journal_lock = JournalLock.acquire(settings.journal.path, settings.bot_id)  # one daemon each
    journal = Journal(settings.journal.path)
    bus = EventBus(LogSink(), journal)
    venues = make_venues(settings, clock)
    engine = Engine(settings, venues, clock, bus, config_path, secrets_file, journal)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _install_signals(loop, stop, engine)

    async def stop_after(seconds: float) -> None:
        await clock.sleep(seconds)
        stop.set()

    timer = asyncio.ensure_future(stop_after(duration_s)) if duration_s else None
    log.info(
        "daemon.starting",
        bot_id=settings.bot_id,
        accounts={n: f"{a.exchange}/{a.mode}" for n, a in settings.accounts.items()},
    )
    bridge, bridge_task = start_mqtt(settings, engine, bus)
    health, health_tasks = start_health(settings, engine, bus)
    metrics_task = start_metrics(settings, engine, bus, health)
    if config_path is not None and isinstance(clock, LiveClock):
        # A virtual clock never waits for a file event: drills reload by command only.
        health_tasks.append(asyncio.create_task(watch_config(config_path, engine.controls.reload)))
    try:
        return await engine.run(stop)
    finally:
        health.stopping()
        await cancel_all(health_tasks)
        if timer is not None:
            timer.cancel()
        if metrics_task is not None:
            await cancel_all([metrics_task])
        if bridge is not None and bridge_task is not None:
            # After the engine's summary, so the final events and state go out before `offline`.
            await stop_mqtt(bridge, bridge_task)
        journal.close()
        journal_lock.release()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, engine: Engine) -> None:
    """SIGINT/SIGTERM set `stop` (a clean shutdown); a second one exits at once. SIGHUP reloads
    the config."""
    signals = {"count": 0}

    def on_signal(sig: signal.Signals) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("daemon.forced_exit", signal=sig.name)
            os._exit(130)
        log.info("daemon.signal", signal=sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(engine.controls))


def start_health(
    settings: Settings, engine: Engine, bus: EventBus
) -> tuple[Health, list[asyncio.Task[None]]]:
    """Readiness from the state document; systemd (Type=notify) hears READY, WATCHDOG,
    STOPPING. The health sink and its tasks."""
    notifier = Notifier.from_env()
    health = Health(
        engine.controls.state, settings.journal.path, settings.metrics.health_max_lag_s, notifier
    )
    bus.add(health)
    return health, [asyncio.create_task(t) for t in (health.run(), watchdog_forever(notifier))]


def start_metrics(
    settings: Settings, engine: Engine, bus: EventBus, health: Health | None = None
) -> asyncio.Task[None] | None:
    """Prometheus endpoint: counters from events, gauges refreshed from the state document;
    /healthz and /readyz on the same port."""
    cfg = settings.metrics
    if not cfg.enabled:
        return None
    metrics = Metrics(settings.bot_id)
    try:
        serve(metrics, cfg.host, cfg.port, health)
    except OSError as e:  # metrics are not on the money path: hedge without them
        log.error("metrics.unavailable", host=cfg.host, port=cfg.port, error=str(e))
        return None
    bus.add(metrics)
    return asyncio.create_task(refresh_forever(metrics, engine.controls.state, cfg.refresh_s))


def start_mqtt(
    settings: Settings, engine: Engine, bus: EventBus
) -> tuple[MqttBridge | None, asyncio.Task[None] | None]:
    """The MQTT bridge as one more event sink plus its own network task. It is off the money
    path: it connects in the background, and the engine never waits for the broker."""
    if not settings.mqtt.enabled:
        return None, None

    def on_position(p: ExternalPositionIn) -> None:
        # The bridge resolves ttl_s to expires_at_ms on receipt; a CommandError (unknown
        # underlying or symbol) propagates and the bridge turns it into a rejection event.
        assert p.expires_at_ms is not None
        engine.controls.set_external_position(
            p.source, p.symbol, p.underlying, p.qty, p.delta_coin, p.expires_at_ms
        )

    bridge = MqttBridge(
        settings.mqtt,
        settings.bot_id,
        engine.controls,
        on_external_position=on_position,
        events=bus,
    )
    bus.add(bridge)
    task = asyncio.create_task(bridge.run(), name="mqtt-bridge")
    log.info(
        "mqtt.enabled",
        host=settings.mqtt.host,
        port=settings.mqtt.port,
        topics=f"{settings.mqtt.topic_prefix}/{settings.bot_id}/#",
        signed_commands=settings.mqtt.command_secret is not None,
    )
    return bridge, task


async def stop_mqtt(bridge: MqttBridge, task: asyncio.Task[None]) -> None:
    try:
        await bridge.close()
    except Exception as e:  # telemetry must not turn a clean shutdown into a failed one
        log.warning("mqtt.close_failed", error=repr(e))
    await cancel_all([task])


def _reload(controls: OperatorControls) -> None:
    try:
        controls.reload()
    except Exception as e:  # a bad file keeps the running config; reload() says why
        log.warning("config.reload_failed", error=str(e))
