"""The bridge's inbound queue: bounded by bytes as well as count, drops counted."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt
import pytest

from bot.io.mqtt_inbox import InboxStats, aiomqtt_logger, queue_type


def msg(size: int) -> aiomqtt.Message:
    return aiomqtt.Message("hedgebot/t/cmd", b"x" * size, 1, False, 1, None)


def test_byte_budget_drops_and_counts_then_frees_on_get() -> None:
    stats = InboxStats()
    q = queue_type(stats, max_bytes=1_000)(maxsize=10)
    q.put_nowait(msg(600))
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(msg(600))  # 1200 > 1000 bytes
    q.put_nowait(msg(400))  # exactly at the budget
    assert stats.dropped == 1 and stats.queued_bytes == 1_000 and q.qsize() == 2
    assert len(q.get_nowait().payload) == 600  # type: ignore[arg-type]
    assert stats.queued_bytes == 400
    q.put_nowait(msg(600))
    assert stats.queued_bytes == 1_000 and stats.dropped == 1


def test_one_large_message_is_admitted_into_an_empty_queue() -> None:
    # so that an oversized command still reaches the bridge, which replies "payload too large"
    stats = InboxStats()
    q = queue_type(stats, max_bytes=1_000)(maxsize=10)
    q.put_nowait(msg(50_000))
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(msg(1))
    assert q.get_nowait().payload is not None and stats.queued_bytes == 0 and stats.dropped == 1


def test_count_limit_also_counts_as_a_drop() -> None:
    stats = InboxStats()
    q = queue_type(stats, max_bytes=1_000_000)(maxsize=2)
    q.put_nowait(msg(1))
    q.put_nowait(msg(1))
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(msg(1))
    assert stats.dropped == 1 and stats.queued_bytes == 2


def test_each_bridge_gets_its_own_stats() -> None:
    a, b = InboxStats(), InboxStats()
    qa, qb = queue_type(a, 10)(), queue_type(b, 10)()
    qa.put_nowait(msg(10))
    with pytest.raises(asyncio.QueueFull):
        qa.put_nowait(msg(10))
    qb.put_nowait(msg(5))
    assert (a.dropped, a.queued_bytes, b.dropped, b.queued_bytes) == (1, 10, 0, 5)


def test_aiomqtt_drop_warning_is_filtered_other_warnings_pass(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = aiomqtt_logger()
    assert aiomqtt_logger() is logger and len(logger.filters) == 1  # idempotent
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Message queue is full. Discarding message.")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
