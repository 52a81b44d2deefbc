"""`supactl secrets set|list|unset`: the function's secrets, by the Management API. Values never
leave the process except to the API; what is shown is the SHA-256 digest the API reports."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from supactl.commands._options import JSON, PROJECT_REF, VERBOSE, WORKDIR, management, project
from supactl.commands._output import cli_errors, command_group, echo, print_json

secrets_app = command_group("Manage the Edge Functions' secrets (environment).")

DIGEST_SHOWN = 16  # hex digits of the digest in tables; --json carries all 64


def parse_pairs(pairs: list[str], env_file: Path | None) -> dict[str, str]:
    """KEY=VALUE arguments, after the pairs of --env-file (arguments win). SUPABASE_* names in an
    env file are skipped with a warning, as the official CLI does: a project .env usually holds
    SUPABASE_URL and friends, which the platform sets itself."""
    from supactl.cloud.management_api import check_secret_name
    from supactl.errors import ConfigError
    from supactl.redact import register

    # Every argument is masked before any is parsed: whatever its shape (NAME=value, NAME:value, a
    # bare value after a space), no message, trace or traceback can show it.
    for pair in pairs:
        register(pair, pair.partition("=")[2], pair.partition(":")[2])
    values: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"env file {env_file} does not exist")
        from supactl.config import read_env_file

        for name, value in read_env_file(env_file).items():
            if name.upper().startswith("SUPABASE_"):
                echo(f"skipping {name} from {env_file}: SUPABASE_ names are reserved", err=True)
                continue
            if value is not None:
                register(value)
                values[name] = value
    for position, pair in enumerate(pairs, start=1):
        name, sep, value = pair.partition("=")
        if not sep:
            # Not quoted back: a bare argument is most often a value that lost its NAME= (a space).
            raise ConfigError(f"argument {position} of `secrets set` is not NAME=VALUE (no '=')",
                              hint="write e.g. OPENAI_API_KEY=sk-…; quote a value holding spaces")
        values[name] = value
    for name in values:
        check_secret_name(name)
    if not values:
        raise ConfigError("nothing to set", hint="pass NAME=VALUE pairs or --env-file .env")
    return values


@secrets_app.command("set")
@cli_errors
def secrets_set(
    pairs: List[str] = typer.Argument(None, metavar="NAME=VALUE...", help="Secrets to create or replace."),
    env_file: Optional[Path] = typer.Option(None, "--env-file", help="Read NAME=VALUE lines from this file."),
    workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Create or replace secrets (the function sees them as environment variables)."""
    from supactl.cloud import management_api as api

    values = parse_pairs(pairs or [], env_file)
    settings, client = management(project(workdir), project_ref, verbose)
    with client:
        api.set_secrets(client, settings.project_ref, values)
    digests = {name: api.secret_digest(value) for name, value in values.items()}
    if as_json:
        print_json({"set": [{"name": n, "digest": d} for n, d in digests.items()]})
        return
    for name, digest in digests.items():
        echo(f"set {name}  sha256:{digest[:DIGEST_SHOWN]}")
    echo(f"Set {len(values)} secret(s) on {settings.project_ref}. New function invocations see them.")


@secrets_app.command("list")
@cli_errors
def secrets_list(workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON,
                 verbose: bool = VERBOSE) -> None:
    """List secret names with the SHA-256 digest of each value."""
    from supactl.cloud import management_api as api

    settings, client = management(project(workdir), project_ref, verbose)
    with client:
        found = api.list_secrets(client, settings.project_ref)
    if as_json:
        print_json({"secrets": [{"name": s.name, "digest": s.digest, "updated_at": s.updated_at} for s in found]})
        return
    if not found:
        echo(f"No secrets on {settings.project_ref}.")
        return
    width = max(len(s.name) for s in found)
    echo(f"{'NAME'.ljust(width)}  {'SHA-256'.ljust(DIGEST_SHOWN + 1)}  UPDATED")
    for s in found:
        echo(f"{s.name.ljust(width)}  {s.digest[:DIGEST_SHOWN]}…  {s.updated_at or ''}")


@secrets_app.command("unset")
@cli_errors
def secrets_unset(
    names: List[str] = typer.Argument(..., metavar="NAME...", help="Secrets to delete."),
    workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Delete secrets."""
    from supactl.cloud import management_api as api

    for name in names:
        api.check_secret_name(name)
    settings, client = management(project(workdir), project_ref, verbose)
    with client:
        api.unset_secrets(client, settings.project_ref, names)
    if as_json:
        print_json({"unset": names})
        return
    echo(f"Unset {', '.join(names)} on {settings.project_ref}.")
