"""Each tenant's tools: what the model may call during that tenant's calls.

Kinds: `http` (the function POSTs a signed JSON body to the tenant's URL), `sql` (a Postgres
function of the tenant's, run as `authenticated` with the tenant's claims so RLS decides what it
sees), and the built-ins `transfer` (to a number) and `end_call`. The table's constraints and
trigger (supabase/migrations/…_tenant_tools.sql) refuse what this module refuses; checking here
first gives the message that says how to fix it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from supactl.database.tenants import TenantError, find_tenant, normalize_e164

NAME_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SQL_FUNCTION_FORMAT = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")
DEFAULT_TIMEOUT_MS = 5000
TIMEOUT_RANGE_MS = (100, 30000)
MAX_DESCRIPTION = 1024
MAX_PARAMETERS_JSON = 16000
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class ToolError(TenantError):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    tenant_id: str
    tenant_name: str
    kind: str  # http | sql | transfer | end_call
    description: str
    parameters: dict[str, Any]
    target: str | None  # the URL, schema.function or number; None for end_call
    timeout_ms: int
    enabled: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ToolTarget:
    """What runs a tool: exactly one of these is set (end_call alone has no target)."""

    url: str | None = None
    sql: str | None = None
    transfer_to: str | None = None
    end_call: bool = False

    def __post_init__(self) -> None:
        self.kind  # refuses a target that is not exactly one kind, before anything is read or written

    @property
    def kind(self) -> str:
        chosen = [kind for kind, value in (("http", self.url), ("sql", self.sql), ("transfer", self.transfer_to),
                                           ("end_call", self.end_call)) if value]
        if len(chosen) != 1:
            raise ToolError("a tool needs exactly one of --url, --sql, --transfer-to or --end-call",
                            hint="e.g. supactl tools add lookup_order --tenant Acme --description '…' --url https://…")
        return chosen[0]


def parse_parameters(text: str | None, *, base_dir: Path | None = None) -> dict[str, Any]:
    """The tool's parameters: a JSON Schema object given inline or as @file. The Realtime API takes
    the schema as the function's `parameters`, so it must be an object schema and valid."""
    if text is None or not text.strip():
        return dict(EMPTY_PARAMETERS)
    source = "--parameters"
    if text.startswith("@"):
        path = (base_dir or Path.cwd()) / text[1:]
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ToolError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                            hint="pass the schema inline or as @path/to/schema.json") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{source} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    check_parameters(schema, source)
    return schema


def check_parameters(schema: Any, source: str = "parameters") -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ToolError(f"{source} must be a JSON Schema object with \"type\": \"object\"",
                        hint='e.g. {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(top level)"
        raise ToolError(f"{source} is not a valid JSON Schema: {exc.message} at {where}") from None
    if len(json.dumps(schema)) > MAX_PARAMETERS_JSON:
        raise ToolError(f"{source} is larger than {MAX_PARAMETERS_JSON} characters of JSON",
                        hint="the model reads the schema on every call of the tenant: keep it short")


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"tool URL {url!r} is not an http(s) URL", hint="e.g. --url https://api.example.com/tools/lookup")
    if parts.username or parts.password:
        # Stored in the table and shown by `tools list`: credentials do not belong in it. The
        # receiver verifies the request's signature instead (README: Defining tools).
        raise ToolError("the tool URL must not carry a user name or password",
                        hint="verify the X-Supactl-Signature header on the receiving side instead")
    if len(url) > 2000:
        raise ToolError("the tool URL is longer than 2000 characters")
    return url


def _check_sql_function(conn, name: str, allow_security_definer: bool) -> str:
    if not SQL_FUNCTION_FORMAT.match(name):
        raise ToolError(f"{name!r} is not schema.function (lower case, e.g. public.lookup_order)")
    row = conn.execute(
        "select p.prosecdef, p.prorettype = 'jsonb'::regtype from pg_catalog.pg_proc p "
        "where p.oid = to_regprocedure(%s)",
        (f"{name}(jsonb)",),
    ).fetchone()
    if row is None:
        raise ToolError(f"function {name}(jsonb) does not exist",
                        hint=f"create it first: create function {name}(args jsonb) returns jsonb …")
    definer, returns_jsonb = row
    if not returns_jsonb:
        raise ToolError(f"function {name}(jsonb) must return jsonb")
    if definer and not allow_security_definer:
        raise ToolError(f"function {name}(jsonb) is SECURITY DEFINER: it would run past the tenant's row-level security",
                        hint="make it SECURITY INVOKER, or pass --allow-security-definer if that is really meant")
    return name


def add_tool(conn, tenant: str, name: str, description: str, target: ToolTarget, *,
             parameters: dict[str, Any] | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
             allow_security_definer: bool = False) -> Tool:
    owner = find_tenant(conn, tenant)
    kind = target.kind
    if not NAME_FORMAT.match(name or ""):
        raise ToolError(f"{name!r} is not a tool name: 1-64 letters, digits, _ or -", hint="e.g. lookup_order")
    description = (description or "").strip()
    if not description or len(description) > MAX_DESCRIPTION:
        raise ToolError(f"a tool needs a description of 1-{MAX_DESCRIPTION} characters",
                        hint="the model decides when to call the tool from it: say what it does and when")
    if not TIMEOUT_RANGE_MS[0] <= timeout_ms <= TIMEOUT_RANGE_MS[1]:
        raise ToolError(f"--timeout-ms {timeout_ms} is outside {TIMEOUT_RANGE_MS[0]}-{TIMEOUT_RANGE_MS[1]}",
                        hint="the caller waits in silence while a tool runs: a few seconds at most")
    schema = parameters if parameters is not None else dict(EMPTY_PARAMETERS)
    check_parameters(schema)
    url = _check_url(target.url) if kind == "http" and target.url else None
    sql = _check_sql_function(conn, target.sql, allow_security_definer) if kind == "sql" and target.sql else None
    transfer_to = normalize_e164(target.transfer_to) if kind == "transfer" and target.transfer_to else None
    row = conn.execute(
        "insert into public.tenant_tools (tenant_id, name, description, parameters, kind, http_url, sql_function, "
        "transfer_to, allow_security_definer, timeout_ms) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "on conflict (tenant_id, name) do nothing returning name",
        (owner.id, name, description, json.dumps(schema), kind, url, sql, transfer_to, allow_security_definer,
         timeout_ms),
    ).fetchone()
    if row is None:
        raise ToolError(f"tenant {owner.name!r} already has a tool named {name!r}",
                        hint=f"supactl tools remove {name} --tenant {owner.name!r} first, to replace it")
    return Tool(name, owner.id, owner.name, kind, description, schema, url or sql or transfer_to, timeout_ms, True)


_SELECT = (
    "select t.name, t.tenant_id::text, n.name, t.kind, t.description, t.parameters, "
    "coalesce(t.http_url, t.sql_function, t.transfer_to), t.timeout_ms, t.enabled "
    "from public.tenant_tools t join public.tenants n on n.id = t.tenant_id"
)


def list_tools(conn, tenant: str | None = None) -> list[Tool]:
    params: tuple = ()
    query = _SELECT
    if tenant is not None:
        query += " where t.tenant_id = %s"
        params = (find_tenant(conn, tenant).id,)
    rows = conn.execute(query + " order by n.name, t.name", params).fetchall()
    return [Tool(*row) for row in rows]


def get_tool(conn, name: str, tenant: str) -> Tool:
    owner = find_tenant(conn, tenant)
    row = conn.execute(_SELECT + " where t.tenant_id = %s and t.name = %s", (owner.id, name)).fetchone()
    if row is None:
        raise ToolError(f"tenant {owner.name!r} has no tool named {name!r}", hint=f"supactl tools list --tenant {owner.name!r}")
    return Tool(*row)


def remove_tool(conn, name: str, tenant: str) -> None:
    tool = get_tool(conn, name, tenant)
    conn.execute("delete from public.tenant_tools where tenant_id = %s and name = %s", (tool.tenant_id, name))


def signing_key(conn, tenant: str) -> str:
    """The tenant's HTTP tool signing key, created on first use (the function does the same)."""
    owner = find_tenant(conn, tenant)
    conn.execute("insert into public.tenant_tool_keys (tenant_id) values (%s) on conflict do nothing", (owner.id,))
    row = conn.execute("select signing_key from public.tenant_tool_keys where tenant_id = %s", (owner.id,)).fetchone()
    return row[0]
