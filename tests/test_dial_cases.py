"""The dial rules of supabase/functions/twilio-voice/testing/dial_cases.json, run against supactl dial's
library (supactl/cloud/outbound.py); dial_api_test.ts runs the same file against the function's dial
endpoint, so the two cannot drift apart."""

from __future__ import annotations

import json

import pytest

from supactl.cloud import outbound
from supactl.cloud.twilio_api import check_e164
from supactl.errors import SupactlError
from supactl.project_files import bundled_function_dir

CASES = json.loads((bundled_function_dir() / "testing" / "dial_cases.json").read_text())


def test_the_cap_and_the_status_events_are_the_cases_files():
    assert outbound.MAX_CONTEXT_BYTES == CASES["max_context_bytes"]
    assert list(outbound.STATUS_CALLBACK_EVENTS) == CASES["status_callback_events"]


@pytest.mark.parametrize("case", CASES["forms"], ids=lambda case: case["name"])
def test_the_calls_api_form(case):
    dial = case["dial"]
    form = outbound.dial_form(to=dial["to"], from_number=dial["from"], function_url=CASES["function_url"],
                              context=dial["context"], machine_detection=dial["machine_detection"],
                              record=dial["record"])
    assert [list(pair) for pair in form] == case["form"]


@pytest.mark.parametrize("case", CASES["contexts"], ids=lambda case: case["name"])
def test_a_context(case):
    text = json.dumps(case["context"], indent=2)  # as a person writes it: the cap is on the compact form
    if case["ok"]:
        assert outbound.parse_context(text) == case["context"]
    else:
        with pytest.raises(outbound.DialError, match="--context"):
            outbound.parse_context(text)


@pytest.mark.parametrize("case", CASES["numbers"], ids=lambda case: case["number"])
def test_an_e164_number(case):
    if case["ok"]:
        check_e164(case["number"])
    else:
        with pytest.raises(SupactlError, match="E.164"):
            check_e164(case["number"])
