"""Apply `supabase/migrations/*.sql` with the semantics of `supabase db push --db-url`.

Same history table, same rows, same refusals, so supactl and the official CLI can be used on one
database side by side: each file runs in one transaction together with its history row, the run
stops at the first failing file (earlier files stay applied), a version applied remotely but
missing locally is refused, and so is a local file older than the newest applied one unless
`include_all`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from supactl.database.connection import connect
from supactl.database.sql_split import split_statements
from supactl.errors import MigrationError

MIGRATION_FILE = re.compile(r"^([0-9]+)_(.*)\.sql$")

# What supabase CLI 2.117.0 runs before reading or writing history.
_CREATE_HISTORY = [
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY)",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text",
]
_INSERT_HISTORY = (
    "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) VALUES(%s, %s, %s)"
)


@dataclass(frozen=True)
class LocalMigration:
    version: str
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


@dataclass
class PushResult:
    applied: list[str] = field(default_factory=list)  # versions applied by this run
    pending: list[str] = field(default_factory=list)  # versions a dry run would apply
    skipped_files: list[str] = field(default_factory=list)  # names not matching the pattern
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied)


@dataclass(frozen=True)
class StatusRow:
    version: str
    local: str | None  # file name, when the file exists
    applied: bool


def list_local(migrations_dir: Path) -> tuple[list[LocalMigration], list[str]]:
    """Local migrations in version order, and the names of files skipped for their name."""
    if not migrations_dir.is_dir():
        raise MigrationError(
            f"no migrations folder at {migrations_dir}",
            hint="run `supactl init` to create supabase/migrations, or pass --migrations-dir",
        )
    found: list[LocalMigration] = []
    skipped: list[str] = []
    for path in sorted(migrations_dir.iterdir()):
        if not path.is_file():
            continue
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append(LocalMigration(match.group(1), match.group(2), path))
        elif path.suffix == ".sql":
            skipped.append(path.name)
    found.sort(key=lambda m: m.version)
    return found, skipped


def applied_versions(conn) -> list[str]:
    exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations') is not null").fetchone()[0]
    if not exists:
        return []
    rows = conn.execute("select version from supabase_migrations.schema_migrations order by version").fetchall()
    return [row[0] for row in rows]


def plan(local: list[LocalMigration], remote: list[str], *, include_all: bool) -> list[LocalMigration]:
    """The files to apply, or MigrationError for a history the CLI would refuse too."""
    local_versions = {m.version for m in local}
    missing = [v for v in remote if v not in local_versions]
    if missing:
        raise MigrationError(
            "the database has migrations that are not in your migrations folder: " + ", ".join(missing),
            hint="pull the missing files (git pull), or if they were abandoned mark them reverted: "
            f"supabase migration repair --status reverted {' '.join(missing)}",
        )
    applied = set(remote)
    pending = [m for m in local if m.version not in applied]
    newest = max(remote) if remote else None
    older = [m for m in pending if newest is not None and m.version < newest]
    if older and not include_all:
        raise MigrationError(
            "local migrations are older than the newest applied one ("
            + str(newest)
            + "): "
            + ", ".join(m.filename for m in older),
            hint="rerun with --include-all to apply them anyway",
        )
    return pending


def push(
    db_url: str,
    migrations_dir: Path,
    *,
    include_all: bool = False,
    dry_run: bool = False,
) -> PushResult:
    local, skipped = list_local(migrations_dir)
    result = PushResult(skipped_files=skipped, dry_run=dry_run)
    with connect(db_url, autocommit=True) as conn:
        pending = plan(local, applied_versions(conn), include_all=include_all)
        if dry_run:
            result.pending = [m.version for m in pending]
            return result
        if pending:
            for statement in _CREATE_HISTORY:
                conn.execute(statement)
        for migration in pending:
            _apply_one(conn, migration)
            result.applied.append(migration.version)
    return result


def _apply_one(conn, migration: LocalMigration) -> None:
    import psycopg

    statements = migration.statements()
    with conn.transaction():
        conn.execute("RESET ALL")
        for index, statement in enumerate(statements):
            try:
                conn.execute(statement, prepare=False)
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{migration.filename} failed at statement {index + 1} of {len(statements)}: "
                    f"{_server_message(exc)}\n  {_excerpt(statement)}",
                    hint="fix the file and run the push again; nothing of this file was applied",
                ) from None
        conn.execute(_INSERT_HISTORY, (migration.version, migration.name, statements))


def _server_message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    state = getattr(diag, "sqlstate", None)
    return f"{primary} (SQLSTATE {state})" if state else primary


def _excerpt(statement: str, limit: int = 300) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def status(db_url: str, migrations_dir: Path) -> list[StatusRow]:
    """Local files against applied versions, like `supabase migration list`."""
    local, _ = list_local(migrations_dir)
    with connect(db_url, autocommit=True) as conn:
        remote = set(applied_versions(conn))
    by_version = {m.version: m.filename for m in local}
    versions = sorted(set(by_version) | remote)
    return [StatusRow(v, by_version.get(v), v in remote) for v in versions]
