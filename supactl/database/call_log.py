"""The call log and transcripts, read either straight from Postgres or through the Supabase API.

With a tenant's JWT the Postgres reader does what PostgREST does for each request (`set local role`
to the token's role, `request.jwt.claims` to its claims, in one transaction), so row-level security
shows exactly what that tenant would see through the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from supactl.database.jwt_tokens import claims_of
from supactl.errors import SupactlError

_CALL_COLUMNS = ("call_sid", "tenant_id", "from_number", "to_number", "started_at", "ended_at", "status",
                 "end_reason", "usage", "handoff_count", "transfer_to", "transfer_outcome", "metrics",
                 "direction", "twilio_status", "twilio_duration_s", "answered_by")
_TURN_COLUMNS = ("seq", "role", "text", "interrupted", "item_id", "created_at")
_TOOL_CALL_COLUMNS = ("seq", "name", "arguments", "output", "status", "duration_ms", "call_id", "created_at")


class CallNotFound(SupactlError):
    pass


@dataclass(frozen=True)
class Call:
    call_sid: str
    tenant_id: str
    from_number: str | None
    to_number: str | None
    started_at: datetime | str
    ended_at: datetime | str | None
    status: str
    end_reason: str | None
    usage: dict[str, Any]
    handoff_count: int
    transfer_to: str | None = None
    transfer_outcome: str | None = None
    # Per-turn latency and audio as the bridge measured them (call_stats.py reads them).
    metrics: dict[str, Any] = field(default_factory=dict)
    # Twilio's view of the call, from its status callbacks (none until the first one lands).
    direction: str = "inbound"
    twilio_status: str | None = None
    twilio_duration_s: int | None = None
    answered_by: str | None = None
    tenant_name: str | None = None


@dataclass(frozen=True)
class Turn:
    seq: int
    role: str
    text: str
    interrupted: bool
    item_id: str
    created_at: datetime | str
    # Set on the conversation's tool calls (role "tool"): name, arguments, output, status, duration_ms.
    tool: dict[str, Any] | None = None


class CallLog(Protocol):
    def list_calls(self, tenant: str | None = None, limit: int = 50, since: datetime | None = None) -> list[Call]: ...

    def call_with_turns(self, call_sid: str) -> tuple[Call, list[Turn]]: ...


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class PostgresCallLog:
    """Reads with a database URL; `jwt` makes it read as that token's user under RLS."""

    def __init__(self, db_url: str, jwt: str | None = None, jwt_secret: str | None = None) -> None:
        self.db_url = db_url
        self.claims = claims_of(jwt, jwt_secret) if jwt else None

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        from psycopg import sql as pgsql

        from supactl.database.connection import connect

        with connect(self.db_url) as conn:
            if self.claims is not None:
                role = self.claims.get("role", "anon")
                conn.execute(pgsql.SQL("set local role {}").format(pgsql.Identifier(role)))
                conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(self.claims),))
            rows = conn.execute(sql, params).fetchall()
            conn.rollback()  # read-only: nothing to keep, and the role ends with the transaction
        return rows

    def list_calls(self, tenant: str | None = None, limit: int = 50, since: datetime | None = None) -> list[Call]:
        conditions, params = list[str](), list[Any]()
        if tenant:
            conditions.append("c.tenant_id::text = %s" if _is_uuid(tenant) else "t.name = %s")
            params.append(tenant)
        if since is not None:
            conditions.append("c.started_at >= %s")
            params.append(since)
        where = ("where " + " and ".join(conditions)) if conditions else ""
        rows = self._query(
            f"select {', '.join('c.' + c for c in _CALL_COLUMNS)}, t.name from public.calls c "
            f"left join public.tenants t on t.id = c.tenant_id {where} "
            "order by c.started_at desc limit %s",
            (*params, limit),
        )
        if tenant and not rows and not self._query(
                "select 1 from public.tenants where id::text = %s or name = %s", (tenant, tenant)):
            # As `numbers list --tenant`: a misspelt tenant is an error, not an empty log.
            from supactl.database.tenants import TenantError

            raise TenantError(f"no tenant with id or name {tenant!r}", hint="see `supactl tenants list`")
        return [_call(row) for row in rows]

    def call_with_turns(self, call_sid: str) -> tuple[Call, list[Turn]]:
        rows = self._query(
            f"select {', '.join('c.' + c for c in _CALL_COLUMNS)}, t.name from public.calls c "
            "left join public.tenants t on t.id = c.tenant_id where c.call_sid = %s",
            (call_sid,),
        )
        if not rows:
            raise _not_found(call_sid, self.claims is not None)
        turns = self._query(
            f"select {', '.join(_TURN_COLUMNS)} from public.call_turns where call_sid = %s order by seq, id",
            (call_sid,),
        )
        tool_calls = self._query(
            f"select {', '.join(_TOOL_CALL_COLUMNS)} from public.call_tool_calls where call_sid = %s order by seq, id",
            (call_sid,),
        )
        return _call(rows[0]), _in_order([Turn(*row) for row in turns],
                                          [dict(zip(_TOOL_CALL_COLUMNS, row)) for row in tool_calls])


class SupabaseCallLog:
    """Reads through the project's REST API with the supabase client (anon or service key, plus an
    optional user JWT), exactly as an app of the tenant would."""

    def __init__(self, project_url: str, api_key: str, jwt: str | None = None, client: Any = None) -> None:
        if client is None:
            from supabase import create_client

            client = create_client(project_url, api_key)
        if jwt:
            client.postgrest.auth(jwt)
        self.client = client

    def _run(self, query: Any) -> list[dict[str, Any]]:
        from postgrest.exceptions import APIError

        try:
            return query.execute().data or []
        except APIError as exc:
            raise SupactlError(f"the Supabase API refused the query: {exc.message}",
                               hint="check the project URL and key; a user JWT sees only its tenant") from None

    def list_calls(self, tenant: str | None = None, limit: int = 50, since: datetime | None = None) -> list[Call]:
        embed = "tenants!inner(name)" if tenant and not _is_uuid(tenant) else "tenants(name)"
        query = self.client.table("calls").select(",".join(_CALL_COLUMNS) + f",{embed}")
        if tenant:
            query = query.eq("tenant_id", tenant) if _is_uuid(tenant) else query.eq("tenants.name", tenant)
        if since is not None:
            query = query.gte("started_at", since.isoformat())
        rows = self._run(query.order("started_at", desc=True).limit(limit))
        return [_call_from_json(row) for row in rows]

    def call_with_turns(self, call_sid: str) -> tuple[Call, list[Turn]]:
        rows = self._run(self.client.table("calls").select(",".join(_CALL_COLUMNS) + ",tenants(name)")
                         .eq("call_sid", call_sid).limit(1))
        if not rows:
            raise _not_found(call_sid, True)
        turns = self._run(self.client.table("call_turns").select(",".join(_TURN_COLUMNS))
                          .eq("call_sid", call_sid).order("seq"))
        tool_calls = self._run(self.client.table("call_tool_calls").select(",".join(_TOOL_CALL_COLUMNS))
                               .eq("call_sid", call_sid).order("seq"))
        return _call_from_json(rows[0]), _in_order([Turn(**{c: t[c] for c in _TURN_COLUMNS}) for t in turns],
                                                   tool_calls)


def _in_order(turns: list[Turn], tool_calls: list[dict[str, Any]]) -> list[Turn]:
    """Turns and tool calls in conversation order: they share the seq numbering."""
    as_turns = [
        Turn(seq=t["seq"], role="tool", item_id=t["call_id"], created_at=t["created_at"], interrupted=False,
             text=f"{t['name']} {t['status']} in {t['duration_ms']} ms: {t['output'][:200]}",
             tool={k: t[k] for k in ("name", "arguments", "output", "status", "duration_ms")})
        for t in tool_calls
    ]
    return sorted([*turns, *as_turns], key=lambda turn: turn.seq)


def _call(row: tuple) -> Call:
    values: dict[str, Any] = dict(zip((*_CALL_COLUMNS, "tenant_name"), row))
    values["tenant_id"] = str(values["tenant_id"])
    return Call(**values)


def _call_from_json(row: dict[str, Any]) -> Call:
    tenant = row.get("tenants") or {}
    values: dict[str, Any] = {c: row.get(c) for c in _CALL_COLUMNS}
    return Call(**values, tenant_name=tenant.get("name"))


def _not_found(call_sid: str, as_user: bool) -> CallNotFound:
    hint = "the call may belong to another tenant than the JWT's" if as_user else "supactl calls list"
    return CallNotFound(f"no call {call_sid}", hint=hint)


def wait_until_final(log: CallLog, call_sid: str, timeout_s: float = 5.0) -> tuple[Call, list[Turn]]:
    """The call and its turns once the bridge has finalized the row (it flushes after the hang-up)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            call, turns = log.call_with_turns(call_sid)
        except CallNotFound:
            if time.monotonic() > deadline:
                raise
            call = None
        if call is not None and (call.status != "in_progress" or time.monotonic() > deadline):
            return call, turns
        time.sleep(0.2)


def transcript_lines(turns: list[Turn]) -> list[dict[str, Any]]:
    return [{"seq": t.seq, "role": t.role, "text": t.text, "interrupted": t.interrupted,
             **({"tool": t.tool} if t.tool is not None else {})} for t in turns]
