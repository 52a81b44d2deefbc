"""Everything `supactl up` and `doctor` talk to, on loopback: the Management API and Twilio contract
servers, the function's webhook stand-in, a fresh real Postgres database and a project folder
written by `supactl init` — plus the environment a user would have exported."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from supactl.cloud.scaffold import init_project
from supactl.database.connection import apply_local_bootstrap
from supactl.dev_stack.postgres_server import EmbeddedPostgres, create_database

from .function_webhook import PATH, FunctionWebhookServer
from .local_http import assert_only_reads
from .management_api import ManagementApiServer
from .twilio import TwilioContractServer

NUMBER = "+14155550100"

# Used only when the real function's entrypoint is not in the package yet (it is being written in
# parallel); the deploy logic is the same whatever the files are.
PLACEHOLDER_INDEX = 'import "./config.ts";\nDeno.serve(() => new Response("ok"));\n'


@dataclass
class CloudStack:
    api: ManagementApiServer
    twilio: TwilioContractServer
    webhook: FunctionWebhookServer
    project: Path
    db_url: str
    environ: dict[str, str] = field(default_factory=dict)
    openai_key: str = ""

    def without(self, *names: str) -> dict[str, str]:
        return {k: v for k, v in self.environ.items() if k not in names}

    def clear_requests(self) -> None:
        for server in (self.api, self.twilio, self.webhook):
            server.clear_requests()

    def assert_only_reads(self) -> None:
        """Nothing was changed at Supabase or Twilio, and the function was only called the way
        Twilio calls it (a POST is how a call reaches it, not a write)."""
        assert_only_reads(self.api, self.twilio)
        self.webhook.assert_no_unexpected_requests(allowed=[("POST", PATH)])


@contextlib.contextmanager
def cloud_stack(pg_server: EmbeddedPostgres, tmp_path: Path, *, numbers_variable: bool = True):
    db_url = create_database(pg_server.url(), "stack_" + uuid.uuid4().hex[:12])
    apply_local_bootstrap(db_url)
    project = tmp_path / "project"
    init_project(project)
    index = project / "supabase/functions/twilio-voice/index.ts"
    if not index.exists():
        index.write_text(PLACEHOLDER_INDEX)
    openai_key = "sk-proj-" + secrets.token_hex(24)
    with ManagementApiServer() as api, TwilioContractServer() as twilio:
        twilio.add_number(NUMBER, voice_url="https://old.example.com/voice")
        with FunctionWebhookServer(api, [twilio.auth_token], tenant_numbers={NUMBER}) as webhook:
            environ = {
                "SUPABASE_ACCESS_TOKEN": api.token,
                "SUPABASE_PROJECT_REF": api.ref,
                "SUPABASE_API_URL": api.base_url,
                "SUPABASE_DB_URL": db_url,
                "OPENAI_API_KEY": openai_key,
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "TWILIO_API_URL": twilio.base_url,
                "PUBLIC_URL": webhook.url,
            }
            if numbers_variable:
                environ["SUPACTL_TWILIO_NUMBERS"] = NUMBER
            yield CloudStack(api, twilio, webhook, project, db_url, environ, openai_key)
