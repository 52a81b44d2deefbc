"""`supactl db push` and `supactl db status`: migrations as `supabase db push --db-url` applies them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, WORKDIR, local_database, project
from supactl.commands._output import cli_errors, command_group, echo, print_json

app = command_group("Apply and inspect database migrations.")

MIGRATIONS_DIR = typer.Option(None, "--migrations-dir", show_default=False,
                              help="Folder of YYYYMMDDHHMMSS_name.sql files (default: supabase/migrations).")


def _migrations(migrations_dir: Optional[Path], workdir: Optional[Path]) -> Path:
    return migrations_dir if migrations_dir is not None else project(workdir) / "supabase" / "migrations"


@app.command()
@cli_errors
def push(
    db_url: Optional[str] = LOCAL_DB_URL,
    migrations_dir: Optional[Path] = MIGRATIONS_DIR,
    include_all: bool = typer.Option(False, "--include-all", help="Also apply files older than the newest applied one."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be applied; change nothing."),
    workdir: Optional[Path] = WORKDIR,
    as_json: bool = JSON,
) -> None:
    """Apply pending migrations, each file atomically with its history row."""
    from supactl.database import migrations

    result = migrations.push(local_database(db_url, workdir), _migrations(migrations_dir, workdir),
                             include_all=include_all, dry_run=dry_run)
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
    db_url: Optional[str] = LOCAL_DB_URL,
    migrations_dir: Optional[Path] = MIGRATIONS_DIR,
    workdir: Optional[Path] = WORKDIR,
    as_json: bool = JSON,
) -> None:
    """Local migration files against the versions applied to the database."""
    from supactl.commands.tables import print_table
    from supactl.database import migrations

    rows = migrations.status(local_database(db_url, workdir), _migrations(migrations_dir, workdir))
    if as_json:
        print_json({"migrations": [{"version": r.version, "local": r.local, "applied": r.applied} for r in rows]})
        return
    print_table(("Local", "Remote", "File"), [
        (row.version if row.local else "", row.version if row.applied else "", row.local or "(missing locally)")
        for row in rows])
    pending = sum(1 for r in rows if r.local and not r.applied)
    echo(f"{pending} pending" if pending else "Database is up to date.")
