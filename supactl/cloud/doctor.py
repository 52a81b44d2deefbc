"""`supactl doctor`: check every link from a phone call to the database, and name the fix for each.

Each check passes, fails (with the exact command that fixes it) or is skipped because a check it
depends on failed. A missing setting fails the checks that need it instead of stopping the run,
so one run reports everything that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import httpx

from supactl import config
from supactl.cloud import management_api as api
from supactl.cloud.deployed_function import NUMBERS_VARIABLE, REQUIRED_SECRETS, configured_numbers
from supactl.cloud.http_client import RetryPolicy
from supactl.errors import ApiError, SupactlError
from supactl.project_files import FUNCTION_NAME

# A test webhook as Twilio sends it for an incoming call (Voice request parameters,
# https://www.twilio.com/docs/voice/twiml#request-parameters). The CallSid is recognisably fake.
TEST_CALL_SID = "CA" + "d0c70r" * 5 + "00"
TEST_CALLER = "+15005550006"  # Twilio's magic "valid number" for test credentials


@dataclass
class Check:
    name: str
    status: str  # pass | fail | skip
    detail: str
    fix: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def _pass(name: str, detail: str) -> Check:
    return Check(name, "pass", detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def _skip(name: str, why: str) -> Check:
    return Check(name, "skip", why)


def _error_text(exc: SupactlError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


@dataclass
class DoctorInputs:
    project_dir: Path
    environ: Mapping[str, str]
    project_ref: str | None = None
    db_url: str | None = None
    slug: str = FUNCTION_NAME
    retry: RetryPolicy | None = None


def run(inputs: DoctorInputs, report: Callable[[Check], None] | None = None) -> list[Check]:
    checks: list[Check] = []

    def add(check: Check) -> Check:
        checks.append(check)
        if report:
            report(check)
        return check

    env, where = inputs.environ, inputs.project_dir
    try:
        config.read_dotenv(where)
    except SupactlError as exc:
        # Reported once: every later check would read the same broken file.
        add(_fail(".env", exc.message, exc.hint or "fix the file, then run `supactl doctor` again"))
        return checks
    try:
        settings = config.management_settings(project_ref_flag=inputs.project_ref, project_dir=where, environ=env)
    except SupactlError as exc:
        settings = None
        add(_fail("access token", _error_text(exc), "export SUPABASE_ACCESS_TOKEN=sbp_… SUPABASE_PROJECT_REF=<ref> "
                  "(token from https://supabase.com/dashboard/account/tokens)"))
    client = api.management_client(settings, retry=inputs.retry) if settings else None
    try:
        project = None
        if client is not None and settings is not None:
            token_check, project = _token_check(client, settings)
            add(token_check)
        project_ok = project is not None
        if project is not None:
            add(_project_active(project))
        else:
            add(_skip("project active", "needs a valid token"))
        add(_migrations_check(inputs))
        if project_ok and client is not None and settings is not None:
            add(_secrets_check(client, settings, inputs))
            function_check = add(_function_check(client, settings, inputs.slug))
        else:
            add(_skip("secrets", "needs a valid token"))
            function_check = add(_skip("function", "needs a valid token"))
        url = _function_url(settings, inputs)
        if function_check.status == "pass":
            add(_webhook_check(url, inputs))
        else:
            add(_skip("webhook", "needs the deployed function"))
        for check in _number_checks(url, inputs):
            add(check)
        members_check = _members_check(inputs)
        if members_check.status != "skip":  # only with a service-role key: members are optional
            add(members_check)
    finally:
        if client:
            client.close()
    return checks


def _token_check(client: httpx.Client, settings: config.ManagementSettings) -> tuple[Check, api.Project | None]:
    try:
        project = api.get_project(client, settings.project_ref)
    except ApiError as exc:
        if exc.status == 401:
            return _fail("access token", "the Management API refused SUPABASE_ACCESS_TOKEN",
                         "create a token at https://supabase.com/dashboard/account/tokens, then "
                         "export SUPABASE_ACCESS_TOKEN=sbp_…"), None
        if exc.status in (403, 404):
            return _fail("access token", f"the token cannot see project {settings.project_ref}",
                         "export SUPABASE_PROJECT_REF=<ref of a project this token's account owns>"), None
        return _fail("access token", _error_text(exc), "retry `supactl doctor` (the API may be down)"), None
    return _pass("access token", f"can manage project {project.ref} ({project.name})"), project


def _project_active(project: api.Project) -> Check:
    if project.is_active:
        return _pass("project active", f"{project.ref} is {project.status}")
    return _fail("project active", f"{project.ref} is {project.status}",
                 f"restore or unpause it: https://supabase.com/dashboard/project/{project.ref}")


def _migrations_check(inputs: DoctorInputs) -> Check:
    from supactl.database.migrations import status

    try:
        url = config.db_url(inputs.db_url, project_dir=inputs.project_dir, environ=inputs.environ)
        rows = status(url, inputs.project_dir / "supabase" / "migrations")
    except SupactlError as exc:
        return _fail("migrations", _error_text(exc),
                     "export SUPABASE_DB_URL=postgresql://… (Project Settings > Database > Connection string)")
    pending = [r.local for r in rows if r.local and not r.applied]
    missing = [r.version for r in rows if r.applied and not r.local]
    if pending:
        return _fail("migrations", f"not applied: {', '.join(pending)}", "supactl db push")
    if missing:
        return _fail("migrations", f"applied to the database but missing locally: {', '.join(missing)}",
                     "restore those files into supabase/migrations/ (e.g. from git)")
    return _pass("migrations", f"all {len(rows)} applied")


def _secrets_check(client: httpx.Client, settings: config.ManagementSettings, inputs: DoctorInputs) -> Check:
    remote = {s.name: s.digest for s in api.list_secrets(client, settings.project_ref)}
    missing = [n for n in REQUIRED_SECRETS if n not in remote]
    if missing:
        return _fail("secrets", f"missing on the project: {', '.join(missing)}",
                     "supactl secrets set " + " ".join(f"{n}=…" for n in missing))
    differ = []
    for name in REQUIRED_SECRETS:
        local = config.lookup(name, project_dir=inputs.project_dir, environ=inputs.environ, secret=True)
        if local and api.secret_digest(local) != remote[name]:
            differ.append(name)
    if differ:
        return _fail("secrets", f"differ from your local values: {', '.join(differ)}",
                     "supactl secrets set " + " ".join(f"{n}=…" for n in differ) + "  (or `supactl up`)")
    return _pass("secrets", f"{', '.join(REQUIRED_SECRETS)} set")


def _function_check(client: httpx.Client, settings: config.ManagementSettings, slug: str) -> Check:
    function = api.get_function(client, settings.project_ref, slug)
    if function is None:
        return _fail("function", f"{slug} is not deployed", f"supactl deploy --function {slug}")
    if function.status != "ACTIVE":
        return _fail("function", f"{slug} is {function.status}", f"supactl deploy --function {slug}")
    if function.verify_jwt is not False:
        return _fail("function", f"{slug} has verify_jwt on: Twilio's requests carry no JWT and get 401",
                     f"supactl deploy --function {slug}  (uploads with verify_jwt false)")
    return _pass("function", f"{slug} version {function.version} ACTIVE, verify_jwt off")


def _function_url(settings: config.ManagementSettings | None, inputs: DoctorInputs) -> str | None:
    from supactl.cloud.deployed_function import function_url

    try:
        return function_url(project_ref=settings.project_ref if settings else None,
                            project_dir=inputs.project_dir, environ=inputs.environ)
    except SupactlError:
        return None


def _webhook_check(url: str | None, inputs: DoctorInputs) -> Check:
    from supactl.twilio_signature import sign

    name = "webhook"
    if url is None:
        return _skip(name, "the function URL is unknown: set PUBLIC_URL or SUPABASE_PROJECT_REF")
    token = config.lookup("TWILIO_AUTH_TOKEN", project_dir=inputs.project_dir, environ=inputs.environ, secret=True)
    if not token:
        return _fail(name, "TWILIO_AUTH_TOKEN is not set locally, so no signed test call can be made",
                     "export TWILIO_AUTH_TOKEN=… (Account Info on https://console.twilio.com)")
    to_tenant = _first_number(inputs)
    account = config.lookup("TWILIO_ACCOUNT_SID", project_dir=inputs.project_dir, environ=inputs.environ)
    params = {"CallSid": TEST_CALL_SID, "AccountSid": account or "AC" + "0" * 32, "From": TEST_CALLER,
              "To": to_tenant or TEST_CALLER, "CallStatus": "ringing", "Direction": "inbound",
              "ApiVersion": "2010-04-01"}
    try:
        with httpx.Client(timeout=20.0) as web:
            signed = web.post(url, data=params, headers={"X-Twilio-Signature": sign(token, url, params)})
            unsigned = web.post(url, data=params)
    except httpx.HTTPError as exc:
        return _fail(name, f"could not reach {url}: {exc}", "check PUBLIC_URL, then `supactl deploy`")
    if signed.status_code == 401:
        return _fail(name, "the platform asked for a JWT (401): verify_jwt is on", f"supactl deploy --function {inputs.slug}")
    if signed.status_code == 403:
        return _fail(name, "the function refused a call signed with your TWILIO_AUTH_TOKEN (403): its secret or its "
                     "public URL differs", "supactl secrets set TWILIO_AUTH_TOKEN=…  (and PUBLIC_URL=… if you proxy it)")
    streams = signed.status_code == 200 and re.search(r"<Connect\b[^>]*>\s*<Stream\b", signed.text)
    answered = signed.status_code == 200 and "<Response>" in signed.text
    if not answered:
        return _fail(name, f"a signed test call to {url} got HTTP {signed.status_code}, not TwiML",
                     f"read the function's logs in the dashboard, then `supactl deploy --function {inputs.slug}`")
    if to_tenant and not streams:
        return _fail(name, f"the function does not know {params['To']} (answered without <Connect><Stream>): "
                     "it reads another database", "supactl db push  (against the project's own SUPABASE_DB_URL)")
    if unsigned.status_code not in (400, 403):
        return _fail(name, f"an unsigned request got HTTP {unsigned.status_code}: anyone could place calls on your bill",
                     "supactl init --force && supactl deploy  (restores the signature check)")
    answer = "<Connect><Stream>" if streams else "TwiML (no tenant number to test with)"
    return _pass(name, f"signed call answered with {answer}; unsigned refused ({unsigned.status_code})")


def _first_number(inputs: DoctorInputs) -> str | None:
    try:
        numbers, _ = _numbers(inputs)
    except SupactlError:
        return None
    return numbers[0] if numbers else None


def _numbers(inputs: DoctorInputs) -> tuple[list[str], str]:
    url = config.db_url(inputs.db_url, project_dir=inputs.project_dir, environ=inputs.environ)
    return configured_numbers(inputs.project_dir, inputs.environ, url)


def _number_checks(url: str | None, inputs: DoctorInputs) -> list[Check]:
    from supactl.cloud.twilio_api import TwilioClient, route_of

    try:
        numbers, source = _numbers(inputs)
    except SupactlError as exc:
        return [_skip("numbers", f"cannot list the numbers: {_error_text(exc)}")]
    if not numbers:
        return [_skip("numbers", f"no numbers: set {NUMBERS_VARIABLE} or `supactl numbers add +E164 --tenant T`")]
    try:
        twilio = TwilioClient.from_config(project_dir=inputs.project_dir, environ=inputs.environ, retry=inputs.retry)
    except SupactlError as exc:
        return [_fail(f"number {n}", _error_text(exc), "export TWILIO_ACCOUNT_SID=AC… TWILIO_AUTH_TOKEN=…")
                for n in numbers]
    checks = []
    with twilio:
        for number in numbers:
            name = f"number {number}"
            try:
                route = route_of(twilio.find_number(number), url)
            except SupactlError as exc:
                checks.append(_fail(name, _error_text(exc), "check TWILIO_ACCOUNT_SID owns this number"))
                continue
            if route.reaches_function:
                checks.append(_pass(name, f"calls {url}"))
            else:
                checks.append(_fail(name, f"calls go to {route.description}",
                                    f"supactl twilio link-number {number}" + (" --force" if "ignored" in route.description else "")))
    return checks


def _members_check(inputs: DoctorInputs) -> Check:
    """Every tenant with calls has someone who can read them (issue 16: `supactl members`)."""
    from supactl.cloud import auth_admin, members
    from supactl.database.connection import connect

    try:
        settings = auth_admin.auth_settings(project_ref_flag=inputs.project_ref, project_dir=inputs.project_dir,
                                            environ=inputs.environ)
    except SupactlError as exc:
        # Optional: the phone chain works without members, so a missing key only skips this check.
        return _skip("members", f"not checked: {_error_text(exc)}")
    try:
        url = config.db_url(inputs.db_url, project_dir=inputs.project_dir, environ=inputs.environ)
        with connect(url, autocommit=True) as conn, \
                auth_admin.auth_admin_client(settings, retry=inputs.retry) as client:
            unread = members.tenants_without_members(conn, client)
    except SupactlError as exc:
        return _fail("members", _error_text(exc), "check SUPABASE_SERVICE_ROLE_KEY and SUPABASE_DB_URL")
    if unread:
        names = ", ".join(name for _, name in unread)
        return _fail("members", f"tenants with calls but no member to read them: {names}",
                     f"supactl members add EMAIL --tenant {unread[0][1]!r} --invite")
    return _pass("members", "every tenant with calls has a member")
