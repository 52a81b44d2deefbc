"""`supactl init`, `deploy`, `up`, `doctor`: the project-level commands. Thin: parse, call, print."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import DB_URL, FUNCTION, JSON, PROJECT_REF, VERBOSE, WORKDIR, management, project
from supactl.commands._output import cli_errors, echo, print_failure, print_json
from supactl.errors import CheckFailed, SupactlError

_MARKS = {"changed": "✓", "unchanged": "=", "would change": "~", "skipped": "-",
          "pass": "✓", "fail": "✗", "skip": "-"}


def init(
    directory: Path = typer.Argument(Path("."), help="Project folder (created if missing)."),
    force: bool = typer.Option(False, "--force", help="Replace files you changed."),
    as_json: bool = JSON,
) -> None:
    """Write the function, migrations, config.toml, .env.example and .gitignore entry."""
    from supactl.cloud.scaffold import init_project

    outcomes = init_project(directory, force=force)
    if as_json:
        print_json({"files": [{"path": o.path, "status": o.status, "reason": o.reason} for o in outcomes]})
        return
    for o in outcomes:
        echo(f"{o.status:>11}  {o.path}" + (f"  ({o.reason})" if o.reason else ""))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("created", "updated", "overwritten", "unchanged", "skipped")}
    echo(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if counts["skipped"]:
        echo("Skipped files keep your changes; `supactl init --force` replaces them.", err=True)


def deploy(
    function: str = FUNCTION, workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF,
    as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Upload the function with verify_jwt off, then confirm it is ACTIVE."""
    workdir = project(workdir)
    from supactl.cloud import deploy as deployer
    from supactl.cloud.deploy_bundle import collect_function
    from supactl.cloud.deployed_function import function_url

    bundle = collect_function(workdir, function)  # refuses a bad folder before any request
    settings, client = management(workdir, project_ref, verbose)
    with client:
        outcome = deployer.deploy(client, settings.project_ref, bundle, workdir)
    url = function_url(project_ref=settings.project_ref, project_dir=workdir) if function == "twilio-voice" \
        else f"https://{settings.project_ref}.supabase.co/functions/v1/{function}"
    fn = outcome.function
    if as_json:
        print_json({"slug": fn.slug, "version": fn.version, "status": fn.status, "verify_jwt": fn.verify_jwt,
                    "files": [f.path for f in bundle.files], "url": url})
        return
    for source in bundle.files:
        echo(f"uploaded {source.path}")
    echo(f"Deployed {fn.slug} version {fn.version}: {fn.status}, verify_jwt off.")
    echo(f"URL: {url}")


def up(
    workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF, db_url: Optional[str] = DB_URL,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing (read-only requests)."),
    as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Migrations, secrets, function, phone numbers: everything, only what changed."""
    workdir = project(workdir)
    from supactl.cloud import up as runner
    from supactl.commands._options import trace_sink

    done: list = []
    try:
        inputs = runner.gather(workdir, project_ref=project_ref, db_url=db_url)
        _, client = management(workdir, project_ref, verbose)
        twilio = None
        if inputs.numbers:
            from supactl.cloud.twilio_api import TwilioClient

            twilio = TwilioClient.from_config(project_dir=workdir, trace=trace_sink(verbose))
        with client, _progress(enabled=not as_json) as starting:
            runner.run(inputs, client, twilio, dry_run=dry_run, starting=starting,
                       report=lambda r: _step_done(r, done, as_json))
        if twilio:
            twilio.close()
    except SupactlError as exc:
        if as_json:
            print_failure(exc.message, exc.hint, exc.exit_code, True, dry_run=dry_run,
                          steps=[r.as_json() for r in done])
            raise typer.Exit(exc.exit_code) from None
        raise
    if as_json:
        print_json({"dry_run": dry_run, "function_url": inputs.function_url,
                    "steps": [r.as_json() for r in done]})
    elif dry_run:
        echo("Dry run: nothing was changed.")
    else:
        changed = sum(r.status == "changed" for r in done)
        echo(f"Up to date: {inputs.function_url}" + (f" ({changed} step(s) changed)" if changed else " (nothing changed)"))


def _step_done(result, done: list, as_json: bool) -> None:
    done.append(result)
    if not as_json:
        echo(f"{_MARKS.get(result.status, '?')} {result.step:<22} {result.status:<12} {result.detail}")


def doctor(
    workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF, db_url: Optional[str] = DB_URL,
    function: str = FUNCTION, as_json: bool = JSON,
) -> None:
    """Check every link from a phone call to the database; print the fix for each broken one."""
    workdir = project(workdir)
    import os

    from supactl.cloud import doctor as checker

    def show(check) -> None:
        if not as_json:
            echo(f"{_MARKS[check.status]} {check.name:<22} {check.detail}")
            if check.fix:
                echo(f"    fix: {check.fix}")

    checks = checker.run(checker.DoctorInputs(workdir, os.environ, project_ref, db_url, function), report=show)
    failed = [c for c in checks if c.status == "fail"]
    if as_json and failed:
        print_failure(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}", failed[0].fix,
                      CheckFailed.exit_code, True, checks=[c.as_json() for c in checks])
    elif as_json:
        print_json({"checks": [c.as_json() for c in checks]})
    elif not failed:
        echo("All checks passed.")
    if failed:
        if not as_json:
            echo(f"{len(failed)} check(s) failed.", err=True)
        raise typer.Exit(CheckFailed.exit_code)


def register(app: typer.Typer) -> None:
    for command in (init, deploy, up, doctor):
        app.command(command.__name__)(cli_errors(command))


@contextlib.contextmanager
def _progress(enabled: bool):
    """A rich spinner naming the running step, on an interactive stderr only (CI logs stay plain)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("starting…") as status:
        yield lambda step: status.update(f"{step}…")
