"""`supactl secrets set|list|unset`: the function's secrets, by the Management API. Values never
leave the process except to the API; what is shown is the SHA-256 digest the API reports."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from supactl.commands._options import JSON, PROJECT_REF, VERBOSE, WORKDIR, management
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

    values: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"env file {env_file} does not exist")
        from dotenv import dotenv_values

        for name, value in dotenv_values(env_file).items():
            if name.upper().startswith("SUPABASE_"):
                echo(f"skipping {name} from {env_file}: SUPABASE_ names are reserved", err=True)
                continue
            if value is not None:
                register(value)
                values[name] = value
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME=VALUE, got {name!r} without '='",
                              hint="write e.g. OPENAI_API_KEY=sk-…; quote values with spaces")
        register(value)
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
    workdir: Path = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Create or replace secrets (the function sees them as environment variables)."""
    from supactl.cloud import management_api as api

    values = parse_pairs(pairs or [], env_file)
    settings, client = management(workdir, project_ref, verbose)
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
def secrets_list(workdir: Path = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON,
                 verbose: bool = VERBOSE) -> None:
    """List secret names with the SHA-256 digest of each value."""
    from supactl.cloud import management_api as api

    settings, client = management(workdir, project_ref, verbose)
    with client:
        found = api.list_secrets(client, settings.project_ref)
    if as_json:
        print_json([{"name": s.name, "digest": s.digest, "updated_at": s.updated_at} for s in found])
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
    workdir: Path = WORKDIR, project_ref: Optional[str] = PROJECT_REF, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Delete secrets."""
    from supactl.cloud import management_api as api

    for name in names:
        api.check_secret_name(name)
    settings, client = management(workdir, project_ref, verbose)
    with client:
        api.unset_secrets(client, settings.project_ref, names)
    if as_json:
        print_json({"unset": names})
        return
    echo(f"Unset {', '.join(names)} on {settings.project_ref}.")
