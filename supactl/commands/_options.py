"""Options every command shares, defined once: the same name, default and help wherever they appear."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from supactl.commands._output import echo

if TYPE_CHECKING:
    import httpx

    from supactl.config import ManagementSettings

WORKDIR = typer.Option(
    None, "--workdir", show_default=False,
    help="The project folder (holding supabase/ and .env). Default: the nearest folder upward from here "
         "with supabase/config.toml, as the Supabase CLI finds it; else this folder.")
PROJECT_REF = typer.Option(None, "--project-ref",
                           help="Project ref (default: SUPABASE_PROJECT_REF, .env, then supabase/.temp/project-ref).")
DB_URL = typer.Option(None, "--db-url", show_default=False,
                      help="Postgres connection URL (default: SUPABASE_DB_URL from the environment, then .env).")
LOCAL_DB_URL = typer.Option(
    None, "--db-url", show_default=False,
    help="Postgres connection URL (default: SUPABASE_DB_URL from the environment, then .env, then the "
         "`supactl dev` running in this project).")
JSON = typer.Option(False, "--json", help="Print the result as one JSON object (`ok`: true or false).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Trace every request on stderr (secrets masked).")
FUNCTION = typer.Option("twilio-voice", "--function", help="The function's folder under supabase/functions/.")
TENANT_FILTER = typer.Option(None, "--tenant", help="Only this tenant (id or name).")


def project(workdir: Optional[Path]) -> Path:
    """The project folder a command works in: --workdir, else found from the current folder upward."""
    from supactl import config

    return workdir if workdir is not None else config.find_project()


def trace_sink(verbose: bool):
    return (lambda line: echo(line, err=True)) if verbose else None


def management(workdir: Path, project_ref: Optional[str], verbose: bool) -> "tuple[ManagementSettings, httpx.Client]":
    """Settings checked before any request, and a Management API client for them."""
    from supactl import config
    from supactl.cloud import management_api as supabase_api

    settings = config.management_settings(project_ref_flag=project_ref, project_dir=workdir)
    return settings, supabase_api.management_client(settings, trace=trace_sink(verbose))


def local_database(db_url: Optional[str], workdir: Optional[Path]) -> str:
    """The database of a local command: --db-url > SUPABASE_DB_URL (environment, .env) > `supactl dev`."""
    from supactl.dev_stack.state import local_db_url

    return local_db_url(db_url, project_dir=project(workdir))
