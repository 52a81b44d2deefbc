"""Latency and cost per call and over the log (`supactl calls show/stats`), read as the owner and as a
tenant's JWT under RLS; the price table, its overrides, and bad input refused with a clear exit."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database.call_costs import (DEFAULT_MODEL_PRICES, PriceTable, billed_minutes, call_cost,
                                         load_price_table, model_cost, token_kinds)
from supactl.database.call_stats import median, parse_since, percentile
from supactl.database.connection import connect
from supactl.database.jwt_tokens import tenant_token
from supactl.errors import ConfigError

SECRET = "test-jwt-secret-with-at-least-32-characters"
SID_FAST = "CA" + "1" * 32
SID_SLOW = "CA" + "2" * 32
SID_FAILED = "CA" + "3" * 32
SID_OTHER = "CA" + "4" * 32
USAGE = {"input_tokens": 1200, "output_tokens": 900, "input_token_details.text_tokens": 200,
         "input_token_details.audio_tokens": 1000, "input_token_details.cached_tokens": 300,
         "input_token_details.cached_tokens_details.text_tokens": 100,
         "input_token_details.cached_tokens_details.audio_tokens": 200,
         "output_token_details.text_tokens": 100, "output_token_details.audio_tokens": 800,
         "transcription.total_tokens": 55}


def _metrics(sent: list[int], played: list[int | None], audio_in_ms: int, audio_out_ms: int, model="gpt-realtime"):
    turns = [{"turn": i, "firstAudioSentMs": s, "firstAudioPlayedMs": p, "toolMs": 0}
             for i, (s, p) in enumerate(zip(sent, played))]
    return {"turns": turns, "audio_in_ms": audio_in_ms, "audio_out_ms": audio_out_ms, "model": model}


@pytest.fixture(scope="module")
def tenants(db_url):
    with connect(db_url) as conn:
        ids = {name: conn.execute("insert into tenants (name) values (%s) returning id::text", (name,)).fetchone()[0]
               for name in ("Initech", "Umbrella")}
        rows = (
            (SID_FAST, "Initech", "completed", "twilio_stop", "90 seconds", _metrics([300, 500], [420, 610], 60000, 30000)),
            (SID_SLOW, "Initech", "completed", "caller_disconnected", "30 seconds",
             _metrics([900], [None], 20000, 10000, model="no-such-model")),
            (SID_FAILED, "Initech", "failed", "model_connect_failed", "5 seconds", _metrics([], [], 5000, 0)),
            (SID_OTHER, "Umbrella", "completed", "twilio_stop", "10 seconds", _metrics([50], [60], 1000, 1000)),
        )
        for sid, tenant, status, reason, length, metrics in rows:
            conn.execute(
                "insert into calls (call_sid, tenant_id, status, end_reason, usage, metrics, started_at, ended_at) "
                "values (%s, %s, %s, %s, %s, %s, now() - interval '1 hour', now() - interval '1 hour' + %s::interval)",
                (sid, ids[tenant], status, reason, json.dumps(USAGE), json.dumps(metrics), length))
        conn.execute("update calls set started_at = now() - interval '3 days', ended_at = now() - interval '3 days' "
                     "+ interval '5 seconds' where call_sid = %s", (SID_FAILED,))
    return ids


def test_tokens_are_split_as_priced_and_cost_follows_from_the_table():
    tokens = token_kinds(USAGE)
    assert (tokens.text_input, tokens.text_cached_input, tokens.audio_input, tokens.audio_cached_input) == (
        200, 100, 1000, 200)
    assert (tokens.text_output, tokens.audio_output) == (100, 800)
    prices = DEFAULT_MODEL_PRICES["gpt-realtime"]
    expected = (100 * 4.0 + 100 * 0.40 + 100 * 16.0 + 800 * 32.0 + 200 * 0.40 + 800 * 64.0) / 1e6
    assert model_cost(tokens, prices) == pytest.approx(expected)
    cost = call_cost(USAGE, "gpt-realtime", 61, PriceTable())
    assert cost.twilio_minutes == 2 and cost.twilio_usd == pytest.approx(2 * 0.0085)
    assert cost.total_usd == pytest.approx(expected + 2 * 0.0085)
    # Without details, what is not audio is text.
    assert token_kinds({"input_tokens": 10, "output_tokens": 4}).text_input == 10
    assert call_cost(USAGE, "no-such-model", 10, PriceTable()).total_usd is None
    assert [billed_minutes(s) for s in (None, 0, 1, 60, 60.5)] == [0, 0, 1, 1, 2]


def test_price_overrides_from_a_file_and_the_environment(tmp_path):
    custom = {"text_input": 1, "text_cached_input": 0, "text_output": 2, "audio_input": 3,
              "audio_cached_input": 0, "audio_output": 4}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"my-model": custom}, "twilio_per_minute": 0.02}))
    table = load_price_table(path, environ={})
    assert table.models["my-model"].audio_output == 4 and table.twilio_per_minute == 0.02
    assert "gpt-realtime" in table.models  # merged over the defaults
    assert load_price_table(None, environ={"SUPACTL_TWILIO_PER_MINUTE": "0.013"}).twilio_per_minute == 0.013
    for bad in ({"models": {"m": {"text_input": 1}}}, {"models": []}, {"extra": 1},
                {"models": {"m": {**custom, "audio_output": -1}}}, {"twilio_per_minute": "cheap"}):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            load_price_table(path, environ={})
    with pytest.raises(ConfigError):
        load_price_table(None, environ={"SUPACTL_TWILIO_PER_MINUTE": "nan"})


def test_durations_and_percentiles():
    assert parse_since("24h") == timedelta(hours=24) and parse_since("7d") == timedelta(days=7)
    for bad in ("", "24", "h", "-1d", "0d", "1.5h", "1y", "99999999d"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_since(bad)
    assert median([]) is None and median([5, 1, 3, 2]) == 2.5
    assert percentile([float(v) for v in range(1, 101)], 95) == 95 and percentile([7.0], 95) == 7


def _run(*args: str):
    return CliRunner().invoke(app, ["calls", *args])


def test_show_prints_latency_audio_tokens_and_cost(db_url, tenants, tmp_path):
    shown = _run("show", SID_FAST, "--db-url", db_url, "--json")
    assert shown.exit_code == 0, shown.output
    figures = json.loads(shown.output)["figures"]
    assert figures["first_audio_sent_ms"] == {"p50": 400, "max": 500}
    assert figures["first_audio_played_ms"] == {"p50": 515, "max": 610}
    assert figures["audio_in_min"] == 1.0 and figures["audio_out_min"] == 0.5
    expected = model_cost(token_kinds(USAGE), DEFAULT_MODEL_PRICES["gpt-realtime"]) + 2 * 0.0085
    assert figures["cost"]["total_usd"] == pytest.approx(expected)
    text = _run("show", SID_FAST, "--db-url", db_url, "--plot", str(tmp_path / "turns.svg"))
    assert text.exit_code == 0, text.output
    assert "p50 400 ms, max 500 ms" in text.output and "1.00 / 0.50 min" in text.output
    assert (tmp_path / "turns.svg").read_text().count("<rect x=") == 2
    unpriced = _run("show", SID_SLOW, "--db-url", db_url)
    assert unpriced.exit_code == 0 and "no price for the model" in unpriced.output


def test_stats_over_the_log_as_the_owner_and_as_a_tenant(db_url, tenants, tmp_path):
    every = json.loads(_run("stats", "--db-url", db_url, "--json").output)
    assert every["calls"] == 4
    token = tenant_token(tenants["Initech"], SECRET, subject="s")
    as_tenant = _run("stats", "--db-url", db_url, "--jwt", token, "--json", "--plot", str(tmp_path / "h.svg"))
    assert as_tenant.exit_code == 0, as_tenant.output
    stats = json.loads(as_tenant.output)
    assert stats["calls"] == 3 and stats["failures"] == {"model_connect_failed": 1}
    assert stats["answer_rate"] == pytest.approx(2 / 3)  # the failed call never spoke
    assert stats["first_audio_sent_ms"] == {"p50": 500, "p95": 900}
    assert stats["first_audio_played_ms"] == {"p50": 515, "p95": 610}
    assert stats["minutes"] == pytest.approx((90 + 30 + 5) / 60)
    assert stats["unpriced_calls"] == 1  # no-such-model
    priced = [call_cost(USAGE, "gpt-realtime", s, PriceTable()).total_usd for s in (90, 5)]
    assert stats["cost_usd"] == pytest.approx(sum(priced))
    assert stats["cost_per_call_usd"] == pytest.approx(sum(priced) / 2)
    assert stats["cost_per_minute_usd"] == pytest.approx(sum(priced) / 3)
    assert token not in as_tenant.output
    assert (tmp_path / "h.svg").read_text().startswith("<svg")
    recent = json.loads(_run("stats", "--db-url", db_url, "--jwt", token, "--since", "24h", "--json").output)
    assert recent["calls"] == 2 and recent["failures"] == {}
    text = _run("stats", "--db-url", db_url, "--tenant", "Umbrella")
    assert text.exit_code == 0 and "p50 50 ms" in text.output and "100%" in text.output


def test_bad_input_is_refused_before_any_query(db_url, tenants, tmp_path):
    for args, needle in ((["--since", "yesterday"], "not a duration"), (["--plot", str(tmp_path / "h.png")], ".svg")):
        result = _run("stats", "--db-url", db_url, *args)
        assert result.exit_code == 64 and needle in result.output, result.output  # EXIT_USAGE
    assert not (tmp_path / "h.png").exists()
    unknown = _run("stats", "--db-url", db_url, "--tenant", "Nobody")
    assert unknown.exit_code != 0 and "no tenant" in unknown.output
    bad_prices = tmp_path / "p.json"
    bad_prices.write_text("{")
    result = _run("stats", "--db-url", db_url, "--prices", str(bad_prices))
    assert result.exit_code == 2 and "not JSON" in result.output


def test_metrics_are_written_by_the_service_role_only_and_must_be_an_object(db_url, tenants):
    token = tenant_token(tenants["Initech"], SECRET, subject="s")
    from supactl.database.jwt_tokens import claims_of

    with connect(db_url) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims_of(token, SECRET)),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update calls set metrics = '{}' where call_sid = %s", (SID_FAST,))
    with connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update calls set metrics = '[]' where call_sid = %s", (SID_FAST,))


def test_twilio_status_decides_answered_and_billed_minutes(db_url, tenants):
    """Once Twilio's status callback has landed, its status and duration win over what the bridge saw."""
    answered_sid, unanswered_sid = "CA" + "5" * 32, "CA" + "6" * 32
    with connect(db_url) as conn:
        tenant_id = conn.execute("insert into tenants (name) values ('Hooli') returning id::text").fetchone()[0]
        for sid, status, duration, answered_by in ((answered_sid, "completed", 125, "human"),
                                                   (unanswered_sid, "no-answer", 0, None)):
            conn.execute(
                "insert into calls (call_sid, tenant_id, status, direction, twilio_status, twilio_duration_s, "
                "answered_by, metrics, started_at, ended_at) values (%s, %s, 'completed', 'outbound', %s, %s, %s, "
                "%s, now() - interval '1 minute', now())",
                (sid, tenant_id, status, duration, answered_by, json.dumps(_metrics([200], [260], 1000, 1000))))
    stats = json.loads(_run("stats", "--db-url", db_url, "--tenant", "Hooli", "--json").output)
    # The bridge sent audio on both, but Twilio says nobody answered the second one.
    assert stats["calls"] == 2 and stats["answer_rate"] == pytest.approx(0.5)
    assert stats["minutes"] == pytest.approx(125 / 60)
    shown = _run("show", answered_sid, "--db-url", db_url)
    assert shown.exit_code == 0, shown.output
    assert "outbound" in shown.output and "completed, 125 s, answered by human" in shown.output
