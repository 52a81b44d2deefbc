"""The database refuses agent settings the function would not send (same rules as agent_settings.ts)."""

from __future__ import annotations

import json

import psycopg
import pytest

GOOD = {
    "instructions": "You answer for Acme Dental.",
    "voice": "cedar",
    "greeting": "Acme Dental, how can I help?",
    "model": "gpt-realtime-2025-08-28",
    "transcription_model": "gpt-4o-mini-transcribe",
    "turn_detection": json.dumps({"type": "server_vad", "silence_duration_ms": 500}),
}


def write_agent(url: str, **settings: str) -> None:
    values = {**GOOD, **settings}
    with psycopg.connect(url) as conn:
        tenant_id = conn.execute("insert into public.tenants (name) values ('settings-' || gen_random_uuid()) returning id").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into public.tenant_agents (tenant_id, instructions, voice, greeting, model, transcription_model, turn_detection)"
            " values (%s, %s, %s, %s, %s, %s, %s::jsonb)",
            (tenant_id, *(values[name] for name in GOOD)),
        )


def test_settings_within_the_rules_are_stored_boundaries_included(db_url: str) -> None:
    write_agent(db_url)
    write_agent(db_url, instructions="x" * 32000, greeting="x" * 1000, voice="marin", model="gpt-realtime")


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("instructions", "x" * (3 * 1024 * 1024), "tenant_agents_instructions_length"),
        ("instructions", "x" * 32001, "tenant_agents_instructions_length"),
        ("greeting", "x" * 1001, "tenant_agents_greeting_length"),
        ("voice", "nova", "tenant_agents_voice_known"),
        ("model", "../v1/other?x=", "tenant_agents_model_name"),
        ("transcription_model", "GPT 4", "tenant_agents_transcription_model_name"),
        ("turn_detection", json.dumps({"type": "server_vad", "pad": "x" * 1000}), "tenant_agents_turn_detection_size"),
    ],
)
def test_each_bad_setting_is_refused_by_its_named_constraint(db_url: str, column: str, value: str, constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        write_agent(db_url, **{column: value})
    assert refused.value.diag.constraint_name == constraint
