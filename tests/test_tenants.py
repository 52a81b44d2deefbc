"""`supactl tenants` / `supactl numbers` over a real Postgres."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database.tenants import TenantError, add_number, add_tenant, list_numbers, normalize_e164, remove_number

runner = CliRunner()


def run(db_url: str, *args: str):
    return runner.invoke(app, [*args, "--db-url", db_url])


@pytest.mark.parametrize(
    "typed,expected",
    [("+14155550100", "+14155550100"), ("+1 (415) 555-0100", "+14155550100"), ("+44 20 7946 0958", "+442079460958")],
)
def test_e164_numbers_are_accepted_with_common_separators(typed, expected):
    assert normalize_e164(typed) == expected


@pytest.mark.parametrize("typed", ["4155550100", "+0155550100", "+1415555010012345", "+1-800-FLOWERS", "", "+"])
def test_non_e164_numbers_are_refused_with_the_expected_format(typed):
    with pytest.raises(TenantError) as failure:
        normalize_e164(typed)
    assert "+14155550100" in failure.value.hint


def test_a_number_belongs_to_one_tenant_and_reassigning_it_is_refused(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        acme = add_tenant(conn, "Acme Dental")
        globex = add_tenant(conn, "Globex")
        number, changed = add_number(conn, "+1 415 555 0100", "Acme Dental")
        assert changed and number.phone_number == "+14155550100" and number.tenant_id == acme.id
        assert add_number(conn, "+14155550100", acme.id)[1] is False
        with pytest.raises(TenantError, match="already belongs to tenant 'Acme Dental'"):
            add_number(conn, "+14155550100", globex.id)
        assert [n.phone_number for n in list_numbers(conn, "Acme Dental")] == ["+14155550100"]
        remove_number(conn, "+14155550100")
        assert list_numbers(conn, "Acme Dental") == []
        with pytest.raises(TenantError, match="not assigned"):
            remove_number(conn, "+14155550100")


def test_cli_tenant_and_number_round_trip(db_url):
    created = run(db_url, "tenants", "add", "Initech", "--json")
    assert created.exit_code == 0, created.output
    tenant_id = json.loads(created.output)["id"]
    assert run(db_url, "numbers", "add", "+15005550006", "--tenant", "Initech").exit_code == 0
    listed = run(db_url, "numbers", "list", "--tenant", tenant_id, "--json")
    assert json.loads(listed.output)["numbers"] == [{"phone_number": "+15005550006", "tenant_id": tenant_id, "tenant": "Initech"}]
    assert "Initech" in run(db_url, "tenants", "list").output
    assert run(db_url, "numbers", "remove", "+15005550006").exit_code == 0


def test_cli_reports_a_bad_number_before_trying_the_database():
    result = runner.invoke(app, ["numbers", "add", "555-0100", "--tenant", "x", "--db-url",
                                 "postgresql://postgres:pw@127.0.0.1:1/x"])
    assert result.exit_code == 1 and "is not an E.164 phone number" in result.output


def test_cli_refuses_bad_input_with_a_clear_message_and_non_zero_exit(db_url):
    bad_number = run(db_url, "numbers", "add", "555-0100", "--tenant", "Initech")
    assert bad_number.exit_code == 1 and "is not an E.164 phone number" in bad_number.output
    assert "Traceback" not in bad_number.output
    unknown = run(db_url, "numbers", "add", "+15005550007", "--tenant", "Nobody Inc")
    assert unknown.exit_code == 1 and "no tenant 'Nobody Inc'" in unknown.output
    assert run(db_url, "tenants", "add", "Dupe").exit_code == 0
    duplicate = run(db_url, "tenants", "add", "Dupe")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
