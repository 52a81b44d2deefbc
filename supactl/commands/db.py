"""`supactl db push` and `supactl db status`: migrations as `supabase db push --db-url` applies them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._output import cli_errors, command_group, echo, print_json

app = command_group("Apply and inspect database migrations.")

DB_URL = typer.Option(None, "--db-url", help="Postgres connection URL (default: SUPABASE_DB_URL, then .env).")
MIGRATIONS_DIR = typer.Option(
    Path("supabase/migrations"), "--migrations-dir", help="Folder of YYYYMMDDHHMMSS_name.sql files."
)


@app.command()
@cli_errors
def push(
    db_url: Optional[str] = DB_URL,
    migrations_dir: Path = MIGRATIONS_DIR,
    include_all: bool = typer.Option(False, "--include-all", help="Also apply files older than the newest applied one."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be applied; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Apply pending migrations, each file atomically with its history row."""
    from supactl import config
    from supactl.database import migrations

    result = migrations.push(config.db_url(db_url), migrations_dir, include_all=include_all, dry_run=dry_run)
    if as_json:
        print_json(
            {"applied": result.applied, "pending": result.pending, "skipped_files": result.skipped_files,
             "dry_run": dry_run}
        )
        return
    for name in result.skipped_files:
        echo(f"skipped {name}: file name must match <timestamp>_name.sql", err=True)
    if dry_run:
        echo("Would apply: " + ", ".join(result.pending) if result.pending else "Database is up to date.")
    elif result.applied:
        for version in result.applied:
            echo(f"applied {version}")
        echo(f"Applied {len(result.applied)} migration(s).")
    else:
        echo("Database is up to date.")


@app.command()
@cli_errors
def status(
    db_url: Optional[str] = DB_URL,
    migrations_dir: Path = MIGRATIONS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """Local migration files against the versions applied to the database."""
    from supactl import config
    from supactl.database import migrations

    rows = migrations.status(config.db_url(db_url), migrations_dir)
    if as_json:
        print_json([{"version": r.version, "local": r.local, "applied": r.applied} for r in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Local", "Remote", "File")
    for row in rows:
        table.add_row(row.version if row.local else "", row.version if row.applied else "", row.local or "(missing locally)")
    Console().print(table)
    pending = sum(1 for r in rows if r.local and not r.applied)
    echo(f"{pending} pending" if pending else "Database is up to date.")
