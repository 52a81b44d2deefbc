"""Stream sockets that never prove their call: the upgrade's signature covers only the fixed stream
URL, so one observed value opens any number of them. Before a valid `start` the function allows a
deadline, a few small frames and a per-worker count of such sockets (README: Limits against
abuse); each attack here checks the server enforces them, with the limits read from its source."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.attack_support import (  # noqa: F401 (fixtures)
    POLICY_VIOLATION, Limits, attack_db, function, peer, stream_upgrade_headers,
)

pytestmark = pytest.mark.slow

IDLE_SOCKETS = 200
ABNORMAL_CLOSURE = 1006  # RFC 6455 §7.4.1: the connection dropped without a close frame
# The server's timer fires on a loaded 2-core box a little late; the close frame needs a round trip.
CLOSE_SLACK_S = 1.5
# Allocator and V8 heap noise on top of what the limits let the sockets make the worker hold.
RSS_SLACK_MB = 16


def media_frame(chars: int) -> str:
    """A `media` frame of exactly `chars` characters (before `start`, which proves nothing)."""
    envelope = json.dumps({"event": "media", "media": {"payload": ""}})
    return envelope.replace('"payload": ""', '"payload": "' + "A" * (chars - len(envelope)) + '"')


async def open_stream(function) -> object:
    return await connect(function.stream_url, additional_headers=stream_upgrade_headers(function),
                         open_timeout=15, ping_interval=None, close_timeout=2)


async def idle_socket(function, index: int) -> dict:
    """Upgrade, then stay short of `start`: every other accepted socket spends the whole pre-start
    allowance (the most frames, each the largest), the rest send nothing at all."""
    try:
        ws = await open_stream(function)
    except InvalidStatus as refused:
        return {"accepted": False, "status": refused.response.status_code}
    opened = time.monotonic()
    try:
        if index % 2:
            for _ in range(Limits.max_pre_start_messages):
                await ws.send(media_frame(Limits.max_pre_start_message_chars))
        await asyncio.wait_for(ws.wait_closed(), Limits.pre_start_deadline_s + CLOSE_SLACK_S + 5)
    except (TimeoutError, ConnectionClosed):
        pass
    closed_after = time.monotonic() - opened
    code = ws.close_code
    await ws.close()
    return {"accepted": True, "code": code, "closed_after_s": closed_after}


async def warm_up(function) -> None:
    """Upgrades, refusals and closes once before measuring: the first of them grows a fresh
    worker's heap by ~15 MB (JIT, connection pools) whatever the limits."""
    async def one() -> None:
        try:
            ws = await open_stream(function)
        except InvalidStatus:
            return
        await ws.send(media_frame(Limits.max_pre_start_message_chars))
        await ws.close()

    await asyncio.gather(*(one() for _ in range(Limits.max_unproven_streams + 8)))


def test_idle_sockets_past_the_worker_cap_are_refused_and_the_rest_closed_at_the_pre_start_deadline(function):
    async def attack() -> list[dict]:
        return await asyncio.gather(*(idle_socket(function, index) for index in range(IDLE_SOCKETS)))

    asyncio.run(warm_up(function))
    with function.rss_growth() as rss:
        results = asyncio.run(attack())
    accepted = [r for r in results if r["accepted"]]
    refused = [r for r in results if not r["accepted"]]
    closes = sorted(r["closed_after_s"] for r in accepted)
    print(f"\n{IDLE_SOCKETS} idle upgrades: {len(accepted)} accepted, {len(refused)} refused "
          f"({sorted({r['status'] for r in refused})}); closed after {closes[0]:.2f}-{closes[-1]:.2f} s "
          f"with {sorted({r['code'] for r in accepted})}; RSS +{rss['growth_mb']:.1f} MB "
          f"(budget {Limits.pre_start_budget_bytes() / 2**20:.0f} MiB)")
    assert len(accepted) == Limits.max_unproven_streams
    assert {r["status"] for r in refused} == {503} and len(refused) == IDLE_SOCKETS - Limits.max_unproven_streams
    assert {r["code"] for r in accepted} == {POLICY_VIOLATION}, "closed by the server, as a policy violation"
    assert Limits.pre_start_deadline_s - 0.5 < closes[0] and closes[-1] < Limits.pre_start_deadline_s + CLOSE_SLACK_S
    assert rss["growth_mb"] < Limits.pre_start_budget_bytes() / 2**20 + RSS_SLACK_MB
    assert len(function.events("stream.too_many_unproven")) >= len(refused)

    async def one_more() -> int | None:
        ws = await open_stream(function)  # the closed sockets no longer count against the cap
        await ws.close()
        return ws.close_code

    assert asyncio.run(one_more()) is not None


async def flood_socket(function, frame: str | bytes, frames: int) -> dict:
    """Send `frames` copies of `frame` as fast as the socket takes them, until the server closes it."""
    ws = await open_stream(function)
    started = time.monotonic()
    sent = 0
    try:
        for _ in range(frames):
            await ws.send(frame)
            sent += 1
        await asyncio.wait_for(ws.wait_closed(), 5)
    except (TimeoutError, ConnectionClosed):
        pass
    await ws.close()
    return {"sent": sent, "code": ws.close_code, "closed_after_s": time.monotonic() - started}


def test_a_pre_start_flood_of_64_kb_frames_is_closed_at_its_first_frame_in_bounded_memory(function):
    big = media_frame(64 * 1024)
    small = media_frame(Limits.max_pre_start_message_chars)
    floods = [(big, 500)] * 6 + [(big.encode(), 500), (small, 500)]  # 256 MB, were any of it read

    async def attack() -> list[dict]:
        return await asyncio.gather(*(flood_socket(function, frame, count) for frame, count in floods))

    with function.rss_growth() as rss:
        results = asyncio.run(attack())
    print(f"\npre-start floods: sent {[r['sent'] for r in results]} frames before the close, closed after "
          f"{[round(r['closed_after_s'] * 1000) for r in results]} ms with {sorted({r['code'] for r in results})}; "
          f"RSS +{rss['growth_mb']:.1f} MB")
    # The server closes with 1008; a client still writing when it does may see the TCP reset
    # instead of the close frame (1006), so the log says which socket was refused and why.
    assert {r["code"] for r in results} <= {POLICY_VIOLATION, ABNORMAL_CLOSURE}
    assert all(r["closed_after_s"] < 2 and r["sent"] < 500 for r in results)
    assert rss["growth_mb"] < Limits.pre_start_budget_bytes() / 2**20 + RSS_SLACK_MB
    refusals = [line["reason"] for line in function.events("stream.refused")]
    assert refusals.count("too many frames before start") >= 1
    assert refusals.count("oversized frame before start") >= len(floods) - 1
