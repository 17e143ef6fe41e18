"""`hedgebot ctl`: send one command to a running bot over MQTT and print its reply.

The command is the bridge's own wire format (bot/io/mqtt_schema_in.py), checked with the same
pydantic models before anything is sent, signed with bot/io/command_auth.py when the config has
`mqtt.command_secret`. The reply is matched by command id on `cmd/reply`; the bot's retained
`status` is read alongside so that a missing reply can say whether the bot is offline.

Exit codes: 0 done, 1 refused by the bot, 2 usage or config error (nothing sent), 3 no broker or
no reply within --timeout. Arguments are declared in bot/io/ctl_cli.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import aiomqtt
from pydantic import ValidationError

from bot.clock import wall_ms
from bot.config import ConfigError, load_settings
from bot.config_ops import MqttConfig
from bot.io.command_auth import signed
from bot.io.mqtt_commands import describe_validation
from bot.io.mqtt_schema_in import parse_command
from bot.io.mqtt_schema_out import CommandReply
from bot.io.mqtt_tools import tool_broker, tool_client
from bot.io.mqtt_wire import Topics, dumps

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_REPLY = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or config: reported with exit code 2 before anything is sent."""


@dataclass(frozen=True, slots=True)
class Outcome:
    reply: CommandReply | None
    raw: dict[str, Any] | None  # the reply as published, for --json
    bot_status: str | None  # the retained online/offline, if the broker had one


def parse_value(text: str) -> Any:
    """A `set` value as typed: JSON when it parses (0.3, true, null, [..]), else the string.
    A number that is not finite (1e400, NaN, Infinity) is refused: the wire carries it as null,
    which for some settings means "off", never what was typed."""

    def finite(x: str) -> float:
        v = float(x)
        if not math.isfinite(v):
            raise UsageError(f"set: {text} is not a finite number")
        return v

    def constant(name: str) -> Any:
        raise UsageError(f"set: {name} is not a finite number")

    try:
        return json.loads(text, parse_float=finite, parse_constant=constant)
    except ValueError:
        return text


def build_command(args: argparse.Namespace) -> dict[str, Any]:
    """The command body (without id, ts, sig) for the parsed action; raises UsageError."""
    action: str = args.action
    cmd_args: dict[str, Any] = {}
    if action in ("hedge-now", "flatten") and args.underlying is not None:
        cmd_args["underlying"] = args.underlying
    if action == "flatten":
        if not args.confirm:
            raise UsageError(
                "flatten needs --confirm: it pauses the bot and closes its hedge positions "
                "with market-priced reduce-only orders"
            )
        cmd_args["confirm"] = True
    elif action == "set":
        cmd_args = {"path": args.key, "value": parse_value(args.value)}
    elif action in ("halt", "set-trading-state"):
        if action == "set-trading-state":
            cmd_args["state"] = args.state
        if args.reason is not None:
            cmd_args["reason"] = args.reason
    body: dict[str, Any] = {"cmd": action}
    if cmd_args:
        body["args"] = cmd_args
    return body


def check_command(body: dict[str, Any]) -> None:
    """Validate with the bridge's own models, so a bad argument is a usage error naming the
    field here rather than a refusal from the bot."""
    try:
        parse_command({"id": "check", **body})
    except ValidationError as e:
        raise UsageError(f"invalid {body['cmd']}: {describe_validation(e)}") from None


def _now_ms() -> int:
    return wall_ms()


def _client(cfg: MqttConfig) -> aiomqtt.Client:
    return tool_client(cfg, "ctl")


async def send(cfg: MqttConfig, bot_id: str, command: dict[str, Any], wait_s: float) -> Outcome:
    """Publish `command` (which has its id) and wait up to `wait_s` for its reply. Raises
    aiomqtt.MqttError when the broker cannot be reached."""
    topics = Topics(cfg.topic_prefix, bot_id)
    status: str | None = None
    async with _client(cfg) as client:
        # Subscribed (SUBACK received) before publishing: a fast reply cannot be missed.
        await client.subscribe([(topics.reply, 1), (topics.status, 1)])
        await client.publish(topics.cmd, dumps(command), qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for m in client.messages:
                    payload = m.payload if isinstance(m.payload, bytes | bytearray) else b""
                    if m.topic.matches(topics.status):
                        status = bytes(payload).decode("utf-8", "replace").strip() or None
                        continue
                    found = _match(bytes(payload), command["id"])
                    if found is not None:
                        return Outcome(found[0], found[1], status)
        except TimeoutError:
            pass
    return Outcome(None, None, status)


def _match(payload: bytes, cmd_id: str) -> tuple[CommandReply, dict[str, Any]] | None:
    """The reply for `cmd_id`, or None for anyone else's (or a malformed) reply."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("id") != cmd_id:
        return None
    try:
        return CommandReply.model_validate(data), data
    except ValidationError:
        return None


# --- printing -----------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(", ", ": "), default=str)
    return "-" if v is None else str(v)


def _status_lines(doc: dict[str, Any]) -> list[str]:
    reason = doc.get("trading_state_reason")
    lines = [
        f"bot {doc.get('bot_id')} ({doc.get('mode')}): {doc.get('trading_state')}"
        + (f" ({reason})" if reason else "")
    ]
    for u, s in sorted((doc.get("underlyings") or {}).items()):
        if not isinstance(s, dict):
            continue
        line = (
            f"  {u}: delta {_fmt(s.get('delta_coin'))} coin / {_fmt(s.get('delta_usd'))} usd, "
            f"target {_fmt(s.get('target'))} ± {_fmt(s.get('band'))} {s.get('unit')}, "
            f"hedge {s.get('hedge_instrument')}"
        )
        if s.get("halted"):
            line += f", not trading: {s['halted']}"
        lines.append(line + _cross_text(s.get("cross")))
    orders = doc.get("open_orders")
    n_orders = len(orders) if isinstance(orders, list) else orders
    feeds = doc.get("feeds") or {}
    bad = sorted(n for n, f in feeds.items() if not (isinstance(f, dict) and f.get("ok")))
    lines.append(
        f"  open orders {_fmt(n_orders)}, external positions "
        f"{_fmt(doc.get('external_positions'))}, feeds "
        + ("ok" if not bad else "stale: " + ", ".join(bad))
    )
    return lines


def _cross_text(c: Any) -> str:
    """A cross hedge's state in a few words (README "Cross hedges")."""
    if not isinstance(c, dict):
        return ""
    if "proxies" not in c:
        return f", carries {_fmt(c.get('carries_coin'))} coin"
    return (
        f", cross {c.get('status')} on {_fmt(c.get('proxies'))}: beta {_fmt(c.get('beta'))}, "
        f"corr {_fmt(c.get('corr'))}, residual std {_fmt(c.get('residual_std'))}, "
        f"samples {_fmt(c.get('samples'))}/{_fmt(c.get('min_samples'))}"
    )


def _positions_lines(result: dict[str, Any]) -> list[str]:
    lines = ["positions (ledger):"]
    rows = result.get("positions") or []
    lines += [
        f"  {p.get('account')} {p.get('symbol')} ({p.get('underlying')}): {_fmt(p.get('qty'))}"
        for p in rows
    ] or ["  none"]
    lines.append("external positions:")
    ext = result.get("external") or []
    lines += [
        f"  {p.get('source')} {p.get('symbol')} ({p.get('underlying')}): qty {_fmt(p.get('qty'))}"
        f", delta {_fmt(p.get('delta_coin'))} coin, expires {_fmt(p.get('expires_at_ms'))}"
        for p in ext
    ] or ["  none"]
    return lines


def render(reply: CommandReply) -> str:
    """The reply as an operator reads it."""
    if not reply.ok:
        return f"refused: {reply.cmd or '?'}: {reply.error}"
    result = reply.result
    lines = [f"ok: {reply.cmd}"]
    if isinstance(result, dict):
        if reply.cmd == "status":
            lines += _status_lines(result)
        elif reply.cmd == "positions":
            lines += _positions_lines(result)
        else:
            # The bot's own explanation (e.g. "paused: nothing will trade") goes last.
            lines += [f"  {k}: {_fmt(v)}" for k, v in result.items() if k != "note"]
            if isinstance(result.get("note"), str):
                lines.append(f"  note: {result['note']}")
    elif result is not None:
        lines.append(f"  {_fmt(result)}")
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------------


def _resolve(args: argparse.Namespace) -> tuple[MqttConfig, str]:
    try:
        settings = load_settings(args.config, args.secrets)
    except ConfigError as e:
        raise UsageError(e.render()) from None
    return tool_broker(settings, args.host, args.port, args.bot_id)


def cmd_ctl(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.timeout is None or not args.timeout > 0:
            raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
        body = build_command(args)
        check_command(body)
        cfg, bot_id = _resolve(args)
    except UsageError as e:
        print(f"hedgebot ctl: {e}", file=err)
        return EXIT_USAGE
    command: dict[str, Any] = {"id": f"ctl-{secrets.token_hex(6)}", **body}
    if cfg.command_secret is not None:
        command = signed(command, cfg.command_secret.get_secret_value(), _now_ms())
    topics = Topics(cfg.topic_prefix, bot_id)
    try:
        outcome = asyncio.run(send(cfg, bot_id, command, float(args.timeout)))
    except aiomqtt.MqttError as e:
        print(f"hedgebot ctl: cannot reach the broker at {cfg.host}:{cfg.port}: {e}", file=err)
        return EXIT_NO_REPLY
    if outcome.reply is None:
        seen = (
            f"its retained status is {outcome.bot_status!r}"
            if outcome.bot_status
            else "it has no retained status on this broker"
        )
        print(
            f"hedgebot ctl: no reply from bot {bot_id!r} on {topics.reply} within "
            f"{args.timeout:g}s ({seen}); the command (id {command['id']}) may still run "
            "if the bot comes back",
            file=err,
        )
        return EXIT_NO_REPLY
    reply = outcome.reply
    if args.json:
        print(json.dumps(outcome.raw), file=out)
    else:
        print(render(reply), file=out if reply.ok else err)
    return EXIT_OK if reply.ok else EXIT_REFUSED
