"""The broker connection of the operator tools (`hedgebot fleet`, `status`, `ctl`) and the TLS
settings they share with the bridge."""

from __future__ import annotations

import secrets
import ssl
from typing import Any

import aiomqtt

from bot.config import Settings
from bot.config_ops import MqttConfig


def tls_params(cfg: MqttConfig) -> aiomqtt.TLSParameters | None:
    """TLS settings for the broker connection; None for plain TCP."""
    if not (cfg.tls or cfg.ca_file is not None):
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
        certfile=str(cfg.cert_file) if cfg.cert_file else None,
        keyfile=str(cfg.key_file) if cfg.key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )


def tool_broker(
    settings: Settings, host: str | None, port: int | None, bot_id: str | None
) -> tuple[MqttConfig, str]:
    """The broker and bot id an operator tool talks to: the config's, then --host, --port and
    --bot-id over them."""
    update: dict[str, Any] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    cfg = settings.mqtt.model_copy(update=update) if update else settings.mqtt
    return cfg, bot_id if bot_id is not None else settings.bot_id


def tool_client(cfg: MqttConfig, role: str) -> aiomqtt.Client:
    """A client for the operator tools (`hedgebot fleet`, `status`, `ctl`): the bot's broker
    settings and credentials, a random client id per run so that two tools never collide."""
    return client(cfg, role, 10)


def client(cfg: MqttConfig, name: str, timeout_s: float, **extra: Any) -> aiomqtt.Client:
    """A client with the config's broker, credentials and TLS, identified as
    `<topic_prefix>-<name>-<random>`. The random suffix: a restarted process must not be refused
    while the broker still holds the old session, and two processes never kick each other off in
    a loop. `extra`: further aiomqtt.Client arguments."""
    tls = tls_params(cfg)
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password else None,
        identifier=f"{cfg.topic_prefix}-{name}-{secrets.token_hex(4)}",
        keepalive=cfg.keepalive,
        timeout=timeout_s,
        tls_params=tls,
        tls_insecure=cfg.tls_insecure if tls is not None else None,
        **extra,
    )
