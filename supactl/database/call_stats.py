"""Per-call and fleet figures from the call log: latency as the bridge measured it (calls.metrics,
written by supabase/functions/twilio-voice/turn_latency.ts), audio minutes each way, tokens and the
estimated cost (call_costs.py), answer rate and failures. `supactl calls show/stats` print these.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Sequence

from supactl.database.call_costs import PriceTable, call_cost, token_kinds
from supactl.database.call_log import Call
from supactl.svg_plot import bar_chart

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Twilio's final statuses that mean the call was answered (calls.twilio_status).
_ANSWERED_TWILIO = {"completed", "in-progress"}


def parse_since(text: str) -> timedelta:
    """"90s", "30m", "24h", "7d", "2w": how far back; ValueError says what is accepted."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a whole number and one of s, m, h, d, w (e.g. 24h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def median(values: Sequence[float]) -> float | None:
    """As turn_latency.ts: the mean of the middle two for an even count."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def duration_s(call: Call) -> float | None:
    """Twilio's duration when the row has it (calls.twilio_duration_s), else started → ended."""
    if call.twilio_duration_s is not None:
        return float(call.twilio_duration_s)
    started, ended = _as_datetime(call.started_at), _as_datetime(call.ended_at)
    return None if started is None or ended is None else max(0.0, (ended - started).total_seconds())


def turn_latencies(call: Call, kind: str = "firstAudioSentMs") -> list[float]:
    """One latency per measured turn: kind firstAudioSentMs or firstAudioPlayedMs."""
    turns = call.metrics.get("turns") if isinstance(call.metrics, dict) else None
    return [float(t[kind]) for t in turns or [] if isinstance(t, dict) and isinstance(t.get(kind), (int, float))]


def answered(call: Call) -> bool:
    """Answered: Twilio's final status says so when the row has it; before that, the bridge sent
    the caller any assistant audio (the agent picked up and spoke)."""
    if call.twilio_status is not None:
        return call.twilio_status in _ANSWERED_TWILIO
    return float(call.metrics.get("audio_out_ms") or 0) > 0


def call_figures(call: Call, table: PriceTable) -> dict[str, Any]:
    """What `calls show` prints: latency p50/max, audio minutes each way, tokens by kind, cost."""
    sent, played = turn_latencies(call), turn_latencies(call, "firstAudioPlayedMs")
    metrics = call.metrics if isinstance(call.metrics, dict) else {}
    cost = call_cost(call.usage, metrics.get("model"), duration_s(call), table)
    return {
        "turns_measured": len(sent),
        "first_audio_sent_ms": {"p50": median(sent), "max": max(sent, default=None)},
        "first_audio_played_ms": {"p50": median(played), "max": max(played, default=None)},
        "tool_ms": sum(float(t.get("toolMs") or 0) for t in metrics.get("turns") or [] if isinstance(t, dict)),
        "audio_in_min": float(metrics.get("audio_in_ms") or 0) / 60000,
        "audio_out_min": float(metrics.get("audio_out_ms") or 0) / 60000,
        "duration_s": duration_s(call),
        "tokens": asdict(token_kinds(call.usage)),
        "cost": asdict(cost),
    }


def fleet_stats(calls: Sequence[Call], table: PriceTable) -> dict[str, Any]:
    """What `calls stats` prints, over the calls given."""
    figures = [call_figures(call, table) for call in calls]
    sent = [v for call in calls for v in turn_latencies(call)]
    played = [v for call in calls for v in turn_latencies(call, "firstAudioPlayedMs")]
    priced = [f["cost"]["total_usd"] for f in figures if f["cost"]["total_usd"] is not None]
    minutes = sum((f["duration_s"] or 0) for f in figures) / 60
    billed = sum(f["cost"]["twilio_minutes"] for f in figures if f["cost"]["total_usd"] is not None)
    failures = Counter(call.end_reason or "unknown" for call in calls if call.status == "failed")
    return {
        "calls": len(calls),
        "minutes": minutes,
        "audio_in_min": sum(f["audio_in_min"] for f in figures),
        "audio_out_min": sum(f["audio_out_min"] for f in figures),
        "answer_rate": (sum(answered(call) for call in calls) / len(calls)) if calls else None,
        "turns_measured": len(sent),
        "first_audio_sent_ms": {"p50": median(sent), "p95": percentile(sent, 95)},
        "first_audio_played_ms": {"p50": median(played), "p95": percentile(played, 95)},
        "cost_usd": sum(priced),
        "cost_per_call_usd": sum(priced) / len(priced) if priced else None,
        "cost_per_minute_usd": sum(priced) / billed if billed else None,
        "unpriced_calls": len(calls) - len(priced),
        "failures": dict(failures.most_common()),
        "prices": table.describe(),
    }


def latency_histogram_svg(calls: Sequence[Call], bucket_ms: int = 100) -> str:
    """Turns per latency bucket (speech end → first audio sent, and → first played)."""
    sent = [v for call in calls for v in turn_latencies(call)]
    if not sent:
        return ""
    top = int(max(sent) // bucket_ms) + 1
    counts = Counter(int(v // bucket_ms) for v in sent)
    bars = [(f"{i * bucket_ms}", float(counts.get(i, 0))) for i in range(top)]
    return bar_chart(bars, title=f"Reply latency over {len(sent)} turns ({len(calls)} calls)",
                     x_label=f"speech end → first audio sent, ms ({bucket_ms} ms buckets)", y_label="turns")


def turn_timeline_svg(call: Call) -> str:
    """One bar per turn: its latency to the first audio sent."""
    sent = turn_latencies(call)
    return bar_chart([(str(i + 1), v) for i, v in enumerate(sent)], title=f"Reply latency per turn, {call.call_sid}",
                     x_label="assistant turn", y_label="speech end → first audio sent, ms")
