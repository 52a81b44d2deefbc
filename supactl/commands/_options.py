"""Options and helpers shared by the cloud commands (init, secrets, deploy, up, doctor)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from supactl.commands._output import echo

if TYPE_CHECKING:
    import httpx

    from supactl.config import ManagementSettings

WORKDIR = typer.Option(Path("."), "--workdir", help="The project folder (holding supabase/ and .env).")
PROJECT_REF = typer.Option(None, "--project-ref",
                           help="Project ref (default: SUPABASE_PROJECT_REF, .env, then supabase/.temp/project-ref).")
DB_URL = typer.Option(None, "--db-url", help="Postgres connection URL (default: SUPABASE_DB_URL, then .env).")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Trace every HTTP request on stderr (secrets masked).")
FUNCTION = typer.Option("twilio-voice", "--function", help="The function's folder under supabase/functions/.")


def trace_sink(verbose: bool):
    return (lambda line: echo(line, err=True)) if verbose else None


def management(workdir: Path, project_ref: Optional[str], verbose: bool) -> "tuple[ManagementSettings, httpx.Client]":
    """Settings checked before any request, and a Management API client for them."""
    from supactl import config
    from supactl.cloud import management_api as supabase_api

    settings = config.management_settings(project_ref_flag=project_ref, project_dir=workdir)
    return settings, supabase_api.management_client(settings, trace=trace_sink(verbose))
