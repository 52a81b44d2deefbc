"""`supactl tools test`: one call of a tenant's tool, run by the function's own tool runner
(supabase/functions/twilio-voice/run_tool_once.ts on the pinned Deno), so the request, its
signature, the SQL role and claims, the timeout and the output cap are exactly the bridge's."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from supactl.database import tools
from supactl.errors import SupactlError

# What the bridge answers the model for a built-in (bridge.ts): nothing to run outside a call.
_BUILT_IN = {"transfer": "in a call, the agent's line finishes and the call is dialed to {target}",
             "end_call": "in a call, the goodbye finishes and the call is hung up"}


def try_tool(conn, db_url: str, name: str, tenant: str, arguments: Any) -> dict[str, Any]:
    tool = tools.get_tool(conn, name, tenant)
    if tool.kind in _BUILT_IN:
        return {"tool": name, "kind": tool.kind, "status": "ok", "ran": False,
                "output": _BUILT_IN[tool.kind].format(target=tool.target)}
    from supactl.dev_stack.deno_runtime import deno_binary, deno_env
    from supactl.project_files import bundled_function_dir

    request = {
        "tool": {"name": tool.name, "description": tool.description, "parameters": tool.parameters, "kind": tool.kind,
                 "httpUrl": tool.target if tool.kind == "http" else None,
                 "sqlFunction": tool.target if tool.kind == "sql" else None, "transferTo": None,
                 "timeoutMs": tool.timeout_ms},
        "arguments": arguments, "tenantId": tool.tenant_id, "callSid": "CA" + uuid.uuid4().hex,
        "from": None, "to": None, "signingKey": tools.signing_key(conn, tool.tenant_id), "databaseUrl": db_url,
    }
    function_dir = bundled_function_dir()
    try:
        ran = subprocess.run(
            [str(deno_binary()), "run", "--quiet", "--allow-net", "--allow-env", f"--allow-read={function_dir}",
             str(function_dir / "run_tool_once.ts")],
            input=json.dumps(request), capture_output=True, text=True, timeout=tool.timeout_ms / 1000 + 60,
            env=deno_env({"RUST_BACKTRACE": "0", "NO_COLOR": "1"}),
        )
    except subprocess.TimeoutExpired:
        raise SupactlError(f"the tool runner did not finish within {tool.timeout_ms} ms plus a minute") from None
    if ran.returncode != 0:
        raise SupactlError("the function's tool runner failed: " + (ran.stderr.strip().splitlines() or ["?"])[-1],
                           hint="run `supactl doctor`, or `supactl dev` once so the function's packages are cached")
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    return {"tool": name, "kind": tool.kind, "ran": True, **result}
