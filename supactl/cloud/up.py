"""`supactl up`: migrations, secrets, function, phone numbers — each step only if something changed.

Everything is read and checked first (`gather`: settings, formats, which numbers), so a missing
value stops the run before any change. Then `run` does the steps in order, each idempotent:
migrations already applied are skipped, secrets are compared by SHA-256 digest with what the API
reports, the function is uploaded only if its files or the deployed version changed (see
supactl.cloud.deploy), and a number already pointing at the function is left alone. `dry_run` makes
only read requests and reports what would change.

Which numbers: SUPACTL_TWILIO_NUMBERS (comma-separated E.164) when set, else every number recorded
for a tenant in the database — the function only answers numbers that belong to a tenant, so those
are the ones worth routing to it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import httpx

from supactl import config
from supactl.cloud import management_api as api
from supactl.cloud.deployed_function import NUMBERS_VARIABLE, OPTIONAL_SECRETS, REQUIRED_SECRETS, configured_numbers
from supactl.errors import CheckFailed, ConfigError, SupactlError
from supactl.project_files import FUNCTION_NAME



@dataclass
class StepResult:
    step: str  # database | secrets | function | number +E164
    status: str  # changed | unchanged | would change | skipped
    detail: str
    items: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class UpInputs:
    project_dir: Path
    settings: config.ManagementSettings
    db_url: str
    secrets: dict[str, str] = field(repr=False)
    numbers: list[str]
    numbers_source: str
    function_url: str
    slug: str = FUNCTION_NAME

    @property
    def migrations_dir(self) -> Path:
        return self.project_dir / "supabase" / "migrations"


def function_secrets(project_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    required = config.all_settings(*(
        functools.partial(config.require, name, project_dir=project_dir, environ=environ, secret=True)
        for name in REQUIRED_SECRETS))
    values = dict(zip(REQUIRED_SECRETS, required))
    for name in OPTIONAL_SECRETS:
        # Settings, not credentials: not masked in output (a masked URL would hide where calls go).
        value = config.lookup(name, project_dir=project_dir, environ=environ)
        if value:
            values[name] = value
    return values


def gather(project_dir: Path, *, environ: Mapping[str, str] | None = None, project_ref: str | None = None,
           db_url: str | None = None, slug: str = FUNCTION_NAME) -> UpInputs:
    from supactl.cloud.deployed_function import function_url

    environ = os.environ if environ is None else environ
    # Every setting is checked before the first is reported: one run names all that are missing.
    settings, url, secrets = config.all_settings(
        lambda: config.management_settings(project_ref_flag=project_ref, project_dir=project_dir, environ=environ),
        lambda: config.db_url(db_url, project_dir=project_dir, environ=environ),
        lambda: function_secrets(project_dir, environ))
    numbers, source = configured_numbers(project_dir, environ, url)
    return UpInputs(project_dir=project_dir, settings=settings, db_url=url, secrets=secrets, numbers=numbers,
                    numbers_source=source, slug=slug,
                    function_url=function_url(project_ref=settings.project_ref, project_dir=project_dir, environ=environ))


def migrations_step(inputs: UpInputs, dry_run: bool) -> StepResult:
    from supactl.database.migrations import push

    result = push(inputs.db_url, inputs.migrations_dir, dry_run=dry_run)
    if dry_run:
        if result.pending:
            return StepResult("database", "would change", f"would apply {len(result.pending)} migration(s)",
                              result.pending)
        return StepResult("database", "unchanged", "every migration is applied")
    if result.applied:
        return StepResult("database", "changed", f"applied {len(result.applied)} migration(s)", result.applied)
    return StepResult("database", "unchanged", "every migration is applied")


def secrets_step(inputs: UpInputs, client: httpx.Client, dry_run: bool) -> StepResult:
    ref = inputs.settings.project_ref
    remote = {s.name: s.digest for s in api.list_secrets(client, ref)}
    stale = {name: value for name, value in inputs.secrets.items() if remote.get(name) != api.secret_digest(value)}
    names = sorted(stale)
    if not stale:
        return StepResult("secrets", "unchanged", f"{len(inputs.secrets)} secret(s) match", [])
    if dry_run:
        return StepResult("secrets", "would change", f"would set {', '.join(names)}", names)
    api.set_secrets(client, ref, stale)
    after = {s.name: s.digest for s in api.list_secrets(client, ref)}
    wrong = [n for n in names if after.get(n) != api.secret_digest(stale[n])]
    if wrong:
        raise CheckFailed(f"the API accepted the secrets but reports other digests for {', '.join(wrong)}",
                          hint="run `supactl secrets list` and compare; then `supactl up` again")
    return StepResult("secrets", "changed", f"set {', '.join(names)}", names)


def function_step(inputs: UpInputs, client: httpx.Client, dry_run: bool) -> StepResult:
    from supactl.cloud import deploy
    from supactl.cloud.deploy_bundle import collect_function

    ref = inputs.settings.project_ref
    bundle = collect_function(inputs.project_dir, inputs.slug)
    files = [f.path for f in bundle.files]
    if dry_run:
        remote = api.get_function(client, ref, inputs.slug)
        reason = deploy.why_upload(remote, deploy.last_upload(inputs.project_dir, ref, inputs.slug),
                                   bundle.content_sha256())
        if reason:
            return StepResult("function", "would change", f"would upload {len(files)} file(s): {reason}", files)
        if remote is None or remote.verify_jwt is not False:
            return StepResult("function", "would change", "would turn verify_jwt off")
        return StepResult("function", "unchanged", f"version {remote.version} is these files, ACTIVE, verify_jwt off")
    outcome = deploy.deploy(client, ref, bundle, inputs.project_dir, only_if_changed=True)
    fn = outcome.function
    if not outcome.changed:
        return StepResult("function", "unchanged", f"version {fn.version} is these files, ACTIVE, verify_jwt off")
    return StepResult("function", "changed", f"version {fn.version} ACTIVE, verify_jwt off ({outcome.reason})", files)


def number_step(inputs: UpInputs, twilio, number: str, dry_run: bool) -> StepResult:
    from supactl.cloud.twilio_api import link_number, route_of

    step = f"number {number}"
    if dry_run:
        route = route_of(twilio.find_number(number), inputs.function_url)
        if route.reaches_function:
            return StepResult(step, "unchanged", "already calls the function")
        return StepResult(step, "would change", f"now {route.description}; would point it at {inputs.function_url}")
    result = link_number(twilio, number, inputs.function_url)
    if result.changed:
        return StepResult(step, "changed", f"VoiceUrl set to {inputs.function_url} (POST)")
    return StepResult(step, "unchanged", "already calls the function")


def run(inputs: UpInputs, client: httpx.Client, twilio=None, *, dry_run: bool = False,
        report: Callable[[StepResult], None] | None = None,
        starting: Callable[[str], None] | None = None) -> list[StepResult]:
    """Run (or with `dry_run`, plan) every step; `report` gets each result as soon as it is known."""
    if inputs.numbers and twilio is None:
        raise ConfigError("numbers are configured but no Twilio client was given")
    steps: list[tuple[str, Callable[[], StepResult]]] = [
        ("database", lambda: migrations_step(inputs, dry_run)),
        ("secrets", lambda: secrets_step(inputs, client, dry_run)),
        ("function", lambda: function_step(inputs, client, dry_run)),
    ]
    steps += [(f"number {n}", functools.partial(number_step, inputs, twilio, n, dry_run)) for n in inputs.numbers]
    results = []
    for name, action in steps:
        if starting:
            starting(name)
        result = action()
        results.append(result)
        if report:
            report(result)
    if not inputs.numbers:
        skipped = StepResult("numbers", "skipped",
                             f"no numbers: set {NUMBERS_VARIABLE} or add one with `supactl numbers add`")
        results.append(skipped)
        if report:
            report(skipped)
    return results
