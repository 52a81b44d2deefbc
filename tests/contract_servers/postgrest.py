"""A PostgREST stand-in for reads, over a real Postgres: what supabase-py's `table().select()` sends
(GET /rest/v1/TABLE?select=…&col=eq.v&order=col.desc&limit=n, `apikey` + bearer headers) run the
way PostgREST runs it — the JWT verified with the project's secret, `set local role` to its role,
`request.jwt.claims` set — so row-level security decides what comes back. Anything outside that
subset is refused with a PGRST-style 400, never silently ignored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

from supactl.database.jwt_tokens import claims_of
from supactl.errors import ConfigError

from .local_http import LocalHttpServer, RecordedRequest, Reply, json_reply

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_EMBED = re.compile(r"^([a-z_]+)(!inner)?\(([a-z_,]+)\)$")
# Foreign keys the stand-in knows how to embed (child column -> parent table).
_EMBEDDABLE = {("calls", "tenants"): "tenant_id", ("call_turns", "tenants"): "tenant_id"}


class PostgrestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class PostgrestServer(LocalHttpServer):
    """`with PostgrestServer(db_url, jwt_secret) as rest:` serves `rest.base_url` + /rest/v1/…"""

    db_url: str
    jwt_secret: str

    def _answer(self, request: RecordedRequest) -> Reply:
        try:
            if request.method != "GET":
                # Reads only: what the stand-in does not implement is refused as PostgREST refuses a verb.
                raise PostgrestError(405, "PGRST117", f"Unsupported HTTP method: {request.method}")
            return json_reply(200, self.select(request.target, request.headers))
        except PostgrestError as exc:
            return json_reply(exc.status, {"code": exc.code, "message": exc.message, "details": None, "hint": None})

    def select(self, target: str, headers: dict[str, str]) -> list[dict]:
        parts = urlsplit(target)
        match = re.fullmatch(r"/rest/v1/([a-z_]+)", parts.path)
        if not match:
            raise PostgrestError(404, "PGRST125", f"Invalid path {parts.path}")
        if not headers.get("apikey"):
            raise PostgrestError(401, "PGRST301", "No API key found in request")
        token = (headers.get("authorization") or "").removeprefix("Bearer ").strip() or headers["apikey"]
        try:
            claims = claims_of(token, self.jwt_secret)
        except ConfigError as exc:
            raise PostgrestError(401, "PGRST301", exc.message) from None
        table = match.group(1)
        columns, joins, wheres, params, order, limit = [], [], [], [], [], None
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "select":
                for item in value.split(","):
                    embed = _EMBED.match(item)
                    if embed:
                        parent, inner, fields = embed.groups()
                        fk = _EMBEDDABLE.get((table, parent))
                        if fk is None:
                            raise PostgrestError(400, "PGRST200", f"no relationship between {table} and {parent}")
                        alias = sql.Identifier(parent)
                        joins.append(sql.SQL("{} join public.{} {} on {}.id = t.{}").format(
                            sql.SQL("inner" if inner else "left"), alias, alias, alias, sql.Identifier(fk)))
                        columns.append(sql.SQL("json_build_object({}) as {}").format(
                            sql.SQL(", ").join(sql.SQL("{}, {}.{}").format(sql.Literal(f), alias, sql.Identifier(f))
                                               for f in fields.split(",")), alias))
                    elif _IDENT.match(item):
                        columns.append(sql.SQL("t.{}").format(sql.Identifier(item)))
                    else:
                        raise PostgrestError(400, "PGRST100", f"unsupported select item {item!r}")
            elif name == "order":
                column, _, direction = value.partition(".")
                if not _IDENT.match(column) or direction not in ("asc", "desc", ""):
                    raise PostgrestError(400, "PGRST100", f"bad order {value!r}")
                order.append(sql.SQL("t.{} {}").format(sql.Identifier(column), sql.SQL(direction or "asc")))
            elif name == "limit":
                limit = int(value)
            elif value.startswith("eq."):
                owner, _, column = name.rpartition(".")
                if not _IDENT.match(column) or (owner and not _IDENT.match(owner)):
                    raise PostgrestError(400, "PGRST100", f"bad filter {name!r}")
                wheres.append(sql.SQL("{}.{}::text = %s").format(sql.Identifier(owner or "t"), sql.Identifier(column)))
                params.append(value[3:])
            else:
                raise PostgrestError(400, "PGRST100", f"unsupported query parameter {name}={value}")
        statement = sql.SQL("select {} from public.{} t {}").format(
            sql.SQL(", ").join(columns or [sql.SQL("t.*")]), sql.Identifier(table), sql.SQL(" ").join(joins))
        if wheres:
            statement += sql.SQL(" where ") + sql.SQL(" and ").join(wheres)
        if order:
            statement += sql.SQL(" order by ") + sql.SQL(", ").join(order)
        if limit is not None:
            statement += sql.SQL(" limit {}").format(sql.Literal(limit))
        with psycopg.connect(self.db_url) as conn:
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(claims.get("role", "anon"))))
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
            try:
                cursor = conn.execute(sql.SQL("select coalesce(json_agg(r), '[]') from ({}) r").format(statement),
                                      params)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise PostgrestError(403, "42501", str(exc).splitlines()[0]) from None
            return cursor.fetchone()[0]
