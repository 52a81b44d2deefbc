"""`supactl members`: against the Supabase Auth admin contract server, and end to end on real Postgres."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database.jwt_tokens import sign_hs256
from tests.contract_servers.supabase_auth import SupabaseAuthServer

pytestmark = pytest.mark.timeout(60)

LIST = ("GET", "/admin/users")


@pytest.fixture
def auth():
    with SupabaseAuthServer() as server:
        yield server


@pytest.fixture
def tenants(db_url):
    """Two tenants, each with one call of two turns."""
    ids = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        for _ in range(2):
            tid = conn.execute("insert into public.tenants (name) values (%s) returning id::text",
                               (f"m-{uuid.uuid4().hex[:8]}",)).fetchone()[0]
            sid = "CA" + uuid.uuid4().hex
            conn.execute("insert into public.calls (call_sid, tenant_id) values (%s, %s)", (sid, tid))
            for seq in range(2):
                conn.execute("insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq)"
                             " values (%s, %s, 'user', 'hi', %s, %s)", (tid, sid, f"item_{seq}", seq))
            ids.append(tid)
    return ids


@pytest.fixture
def members(auth, db_url, tmp_path):
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None):
        env = {"SUPABASE_AUTH_URL": auth.base_url, "SUPABASE_DB_URL": db_url,
               "SUPABASE_SERVICE_ROLE_KEY": key if key is not None else auth.service_role_key,
               "SUPABASE_URL": None, "SUPABASE_PROJECT_REF": None}
        return runner.invoke(app, ["members", *args, "--workdir", str(tmp_path)], env=env)

    return invoke


def put(user_id: str) -> tuple[str, str]:
    return ("PUT", f"/admin/users/{user_id}")


def test_add_sets_tenant_and_keeps_other_app_metadata(auth, members, tenants):
    user = auth.add_user("ana@example.com", {"roles": ["billing"]})
    result = members("add", "Ana@Example.com", "--tenant", tenants[0], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["action"] == "added"
    assert auth.users[user["id"]]["app_metadata"] == {"provider": "email", "providers": ["email"],
                                                      "roles": ["billing"], "tenant_id": tenants[0]}
    auth.assert_requests([LIST, put(user["id"])])
    sent = auth.requests[-1]
    assert sent.json() == {"app_metadata": {"tenant_id": tenants[0]}}
    assert sent.headers["apikey"] == auth.service_role_key
    assert sent.headers["authorization"] == f"Bearer {auth.service_role_key}"
    assert auth.requests[0].query == {"page": ["1"], "per_page": ["1000"]}


def test_add_twice_changes_nothing_the_second_time(auth, members, tenants):
    user = auth.add_user("ana@example.com")
    assert members("add", "ana@example.com", "--tenant", tenants[0]).exit_code == 0
    auth.clear_requests()
    result = members("add", "ana@example.com", "--tenant", tenants[0])
    assert result.exit_code == 0 and "unchanged" in result.output
    auth.assert_requests([LIST])
    assert auth.users[user["id"]]["app_metadata"]["tenant_id"] == tenants[0]


def test_a_member_of_another_tenant_is_refused_unless_moved(auth, members, tenants):
    user = auth.add_user("ana@example.com", {"tenant_id": tenants[0]})
    refused = members("add", "ana@example.com", "--tenant", tenants[1])
    assert refused.exit_code == 1 and "--move" in refused.output
    auth.assert_requests([LIST])
    assert auth.users[user["id"]]["app_metadata"]["tenant_id"] == tenants[0]
    moved = members("add", "ana@example.com", "--tenant", tenants[1], "--move", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.output)["previous_tenant_id"] == tenants[0]
    assert auth.users[user["id"]]["app_metadata"]["tenant_id"] == tenants[1]
    auth.assert_requests([LIST, LIST, put(user["id"])])


def test_an_unknown_email_needs_invite_and_invite_creates_the_member(auth, members, tenants):
    refused = members("add", "new@example.com", "--tenant", tenants[0])
    assert refused.exit_code == 1 and "--invite" in refused.output
    assert auth.users == {}
    result = members("add", "new@example.com", "--tenant", tenants[0], "--invite")
    assert result.exit_code == 0, result.output
    user = auth.user_by_email("new@example.com")
    assert user["invited_at"] and user["app_metadata"]["tenant_id"] == tenants[0]
    assert user["user_metadata"] == {}  # nothing a user could edit carries the tenant
    auth.assert_requests([LIST, LIST, ("POST", "/invite"), put(user["id"])])
    assert auth.requests[2].json() == {"email": "new@example.com"}


def test_list_pages_through_users_and_filters_by_tenant(auth, members, tenants):
    from supactl.cloud import auth_admin
    from supactl.cloud.members import list_members

    for i in range(5):
        auth.add_user(f"u{i}@example.com", {"tenant_id": tenants[i % 2]} if i != 4 else None)
    settings = auth_admin.AuthSettings(auth.base_url, auth.service_role_key)
    with auth_admin.auth_admin_client(settings) as client:
        found = list_members(client, tenants[0], per_page=2)
    assert sorted(u.email for u in found) == ["u0@example.com", "u2@example.com"]
    assert [r.query for r in auth.requests] == [{"page": [str(p)], "per_page": ["2"]} for p in (1, 2, 3)]
    result = members("list", "--tenant", tenants[1], "--json")
    assert result.exit_code == 0, result.output
    assert sorted(u["email"] for u in json.loads(result.output)["members"]) == ["u1@example.com", "u3@example.com"]
    everyone = json.loads(members("list", "--json").output)["members"]
    assert len(everyone) == 4  # u4 belongs to no tenant


def test_list_stops_paging_at_the_bound(auth, tenants):
    from supactl.cloud import auth_admin
    from supactl.errors import ApiError

    for i in range(3):
        auth.add_user(f"u{i}@example.com")
    settings = auth_admin.AuthSettings(auth.base_url, auth.service_role_key)
    with auth_admin.auth_admin_client(settings) as client, pytest.raises(ApiError, match="stopped paging"):
        list(auth_admin.list_users(client, per_page=1, max_pages=2))
    assert len(auth.requests) == 2


def test_remove_clears_only_the_tenant(auth, members, tenants):
    user = auth.add_user("ana@example.com", {"tenant_id": tenants[0], "roles": ["x"]})
    result = members("remove", "ana@example.com", "--tenant", tenants[0])
    assert result.exit_code == 0, result.output
    assert auth.users[user["id"]]["app_metadata"] == {"provider": "email", "providers": ["email"], "roles": ["x"]}
    auth.assert_requests([LIST, put(user["id"])])
    assert auth.requests[-1].json() == {"app_metadata": {"tenant_id": None}}


@pytest.mark.parametrize("args, code, words", [
    (("add", "not-an-email", "--tenant", "T"), 1, "not an email address"),
    (("add", "ana@example.com", "--tenant", "no such tenant"), 1, "no tenant"),
    (("remove", "ghost@example.com", "--tenant", "FIRST"), 1, "no Supabase Auth user"),
    (("remove", "ana@example.com", "--tenant", "SECOND"), 1, "not a member"),
])
def test_bad_input_is_refused_and_changes_nothing(auth, members, tenants, args, code, words):
    user = auth.add_user("ana@example.com", {"tenant_id": tenants[0]})
    before = json.dumps(auth.users, sort_keys=True)
    args = tuple(tenants[0] if a == "FIRST" else tenants[1] if a == "SECOND" else a for a in args)
    result = members(*args)
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output
    auth.assert_only_reads()
    assert json.dumps(auth.users, sort_keys=True) == before
    assert auth.users[user["id"]]["app_metadata"]["tenant_id"] == tenants[0]


@pytest.mark.parametrize("which, code, words", [
    ("wrong", 4, "HTTP 401"), ("anon", 4, "HTTP 403"), ("missing", 2, "SUPABASE_SERVICE_ROLE_KEY is not set"),
])
def test_a_refused_or_missing_key_is_a_clear_error_and_never_printed(auth, members, tenants, which, code, words):
    key = {"wrong": "sb_secret_" + "w" * 30, "anon": auth.anon_key, "missing": ""}[which]
    auth.add_user("ana@example.com")
    result = members("add", "ana@example.com", "--tenant", tenants[0], "--verbose", key=key)
    assert result.exit_code == code, result.output
    assert words in result.output and "SUPABASE_SERVICE_ROLE_KEY" in result.output
    auth.assert_only_reads()
    assert auth.service_role_key not in result.output
    if key:
        assert key not in result.output


def test_an_anon_jwt_in_the_key_setting_is_refused_before_any_request(auth, members, tenants):
    anon_jwt = sign_hs256({"role": "anon", "iss": "supabase"}, "s" * 32)
    result = members("list", key=anon_jwt)
    assert result.exit_code == 2 and "anon" in result.output
    assert auth.requests == []


def supabase_auth_token(user: dict) -> dict:
    """The claims Supabase Auth puts in an access token for `user` (app_metadata copied as stored)."""
    now = int(time.time())
    return {"iss": "http://127.0.0.1/auth/v1", "aud": "authenticated", "role": "authenticated",
            "sub": user["id"], "email": user["email"], "phone": "", "app_metadata": user["app_metadata"],
            "user_metadata": user["user_metadata"], "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()), "is_anonymous": False, "iat": now, "exp": now + 3600}


def read_as(db_url: str, claims: dict) -> tuple[set[str], set[str]]:
    """What PostgREST would return for this token: the tenants of visible calls and turns."""
    with psycopg.connect(db_url) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        calls = {r[0] for r in conn.execute("select tenant_id::text from public.calls")}
        turns = {r[0] for r in conn.execute("select tenant_id::text from public.call_turns")}
    return calls, turns


def test_an_added_member_reads_exactly_their_tenant_and_nothing_after_removal(auth, members, tenants, db_url):
    # A claim in user_metadata must grant nothing, whatever the user wrote there.
    user = auth.add_user("ana@example.com")
    user["user_metadata"] = {"tenant_id": tenants[1]}
    assert read_as(db_url, supabase_auth_token(user)) == (set(), set())
    assert members("add", "ana@example.com", "--tenant", tenants[0]).exit_code == 0
    assert read_as(db_url, supabase_auth_token(auth.users[user["id"]])) == ({tenants[0]}, {tenants[0]})
    with psycopg.connect(db_url) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     (json.dumps(supabase_auth_token(auth.users[user["id"]])),))
        assert conn.execute("select count(*) from public.call_turns").fetchone()[0] == 2
    assert members("remove", "ana@example.com", "--tenant", tenants[0]).exit_code == 0
    assert read_as(db_url, supabase_auth_token(auth.users[user["id"]])) == (set(), set())


def test_doctor_names_each_tenant_with_calls_but_no_member(auth, fresh_db_url, tmp_path):
    from supactl.cloud import doctor
    from supactl.database.migrations import push
    from tests.conftest import REPO_ROOT

    push(fresh_db_url, REPO_ROOT / "supabase" / "migrations")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        ids = {name: conn.execute("insert into public.tenants (name) values (%s) returning id::text",
                                  (name,)).fetchone()[0] for name in ("Acme", "Bolt", "Quiet")}
        for name in ("Acme", "Bolt"):  # Quiet has no calls: it needs no member yet
            conn.execute("insert into public.calls (call_sid, tenant_id) values (%s, %s)",
                         ("CA" + uuid.uuid4().hex, ids[name]))

    def members_check():
        environ = {"SUPABASE_AUTH_URL": auth.base_url, "SUPABASE_SERVICE_ROLE_KEY": auth.service_role_key}
        return doctor._members_check(doctor.DoctorInputs(tmp_path, environ, db_url=fresh_db_url))

    auth.add_user("ana@example.com", {"tenant_id": ids["Acme"]})
    check = members_check()
    assert check.status == "fail"
    assert check.detail.endswith(": Bolt")
    assert check.fix == "supactl members add EMAIL --tenant 'Bolt' --invite"
    auth.add_user("bo@example.com", {"tenant_id": ids["Bolt"]})
    assert members_check().status == "pass"
    auth.assert_only_reads()  # doctor only reads


def test_doctor_skips_the_members_check_without_a_key(tmp_path, db_url):
    from supactl.cloud import doctor

    check = doctor._members_check(doctor.DoctorInputs(tmp_path, {"SUPABASE_AUTH_URL": "http://127.0.0.1:9"},
                                                      db_url=db_url))
    assert check.status == "skip" and "SUPABASE_SERVICE_ROLE_KEY" in check.detail
