"""`supactl db push` / `db status` against a real Postgres, held to what `supabase db push` does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database.migrations import push, status
from supactl.database.sql_split import split_statements
from supactl.errors import MigrationError

REPO_MIGRATIONS = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
SPLIT_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "migration_split"


def history(url: str) -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations order by version"
        ).fetchall()


def table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


def test_project_migrations_apply_to_an_empty_database_and_a_second_push_applies_nothing(fresh_db_url):
    first = push(fresh_db_url, REPO_MIGRATIONS)
    expected = sorted(p.name.split("_", 1)[0] for p in REPO_MIGRATIONS.glob("*.sql"))
    assert first.applied == expected
    second = push(fresh_db_url, REPO_MIGRATIONS)
    assert second.applied == []
    assert [row[0] for row in history(fresh_db_url)] == expected
    for table in ("tenants", "tenant_phone_numbers", "tenant_agents", "calls", "call_turns"):
        assert table_exists(fresh_db_url, f"public.{table}")


@pytest.mark.parametrize("fixture", ["tricky", "quirks"])
def test_history_rows_equal_what_the_supabase_cli_wrote_for_the_same_file(fresh_db_url, tmp_path, fixture):
    # *.cli.json were recorded from `supabase db push --db-url` (CLI 2.117.0) on the same files.
    recorded = json.loads((SPLIT_FIXTURES / f"{fixture}.cli.json").read_text())
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(SPLIT_FIXTURES / f"{fixture}.sql", folder / f"{recorded['version']}_{recorded['name']}.sql")
    push(fresh_db_url, folder)
    assert history(fresh_db_url) == [(recorded["version"], recorded["name"], recorded["statements"])]


def test_history_table_has_the_cli_columns(fresh_db_url):
    push(fresh_db_url, REPO_MIGRATIONS)
    with psycopg.connect(fresh_db_url) as conn:
        columns = conn.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = 'supabase_migrations' and table_name = 'schema_migrations' order by ordinal_position"
        ).fetchall()
    assert columns == [("version", "text", "NO"), ("statements", "ARRAY", "YES"), ("name", "text", "YES")]


def test_split_keeps_semicolons_inside_strings_dollar_quotes_comments_and_atomic_bodies():
    sql = "select ';'; select $x$;$x$; /* ; */ select 1; create function f() returns int begin atomic select 1; end;"
    assert split_statements(sql) == [
        "select ';'",
        "select $x$;$x$",
        "/* ; */ select 1",
        "create function f() returns int begin atomic select 1; end",
    ]


def test_a_failing_file_leaves_neither_its_objects_nor_its_history_and_later_files_do_not_run(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240101000000_good.sql", "create table public.good (id int);")
    write(folder, "20240102000000_bad.sql", "create table public.half (id int);\nselect no_such_function();")
    write(folder, "20240103000000_later.sql", "create table public.later (id int);")
    with pytest.raises(MigrationError) as failure:
        push(fresh_db_url, folder)
    message = failure.value.message
    assert "20240102000000_bad.sql" in message and "statement 2 of 2" in message
    assert "no_such_function" in message
    assert table_exists(fresh_db_url, "public.good")
    assert not table_exists(fresh_db_url, "public.half")
    assert not table_exists(fresh_db_url, "public.later")
    assert [row[0] for row in history(fresh_db_url)] == ["20240101000000"]


def test_a_version_applied_remotely_but_missing_locally_is_refused(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240101000000_a.sql", "create table public.a (id int);")
    write(folder, "20240102000000_b.sql", "create table public.b (id int);")
    push(fresh_db_url, folder)
    (folder / "20240102000000_b.sql").unlink()
    write(folder, "20240103000000_c.sql", "create table public.c (id int);")
    with pytest.raises(MigrationError) as failure:
        push(fresh_db_url, folder)
    assert "20240102000000" in failure.value.message
    assert "migration repair --status reverted 20240102000000" in failure.value.hint
    assert not table_exists(fresh_db_url, "public.c")


def test_a_local_file_older_than_the_newest_applied_needs_include_all(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240103000000_new.sql", "create table public.new (id int);")
    push(fresh_db_url, folder)
    write(folder, "20240102000000_old.sql", "create table public.old (id int);")
    with pytest.raises(MigrationError) as failure:
        push(fresh_db_url, folder)
    assert "20240102000000_old.sql" in failure.value.message and "--include-all" in failure.value.hint
    assert not table_exists(fresh_db_url, "public.old")
    assert push(fresh_db_url, folder, include_all=True).applied == ["20240102000000"]
    assert table_exists(fresh_db_url, "public.old")


def test_dry_run_lists_pending_versions_and_changes_nothing(fresh_db_url):
    result = push(fresh_db_url, REPO_MIGRATIONS, dry_run=True)
    assert result.applied == [] and len(result.pending) == len(list(REPO_MIGRATIONS.glob("*.sql")))
    assert not table_exists(fresh_db_url, "supabase_migrations.schema_migrations")
    assert not table_exists(fresh_db_url, "public.tenants")


def test_files_not_named_like_migrations_are_skipped_and_reported(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240101000000_a.sql", "create table public.a (id int);")
    write(folder, "notes.sql", "this is not sql;")
    result = push(fresh_db_url, folder)
    assert result.applied == ["20240101000000"] and result.skipped_files == ["notes.sql"]


def test_status_shows_local_and_applied_versions(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240101000000_a.sql", "select 1;")
    push(fresh_db_url, folder)
    write(folder, "20240102000000_b.sql", "select 2;")
    rows = status(fresh_db_url, folder)
    assert [(r.version, r.local, r.applied) for r in rows] == [
        ("20240101000000", "20240101000000_a.sql", True),
        ("20240102000000", "20240102000000_b.sql", False),
    ]


def test_cli_push_with_a_wrong_password_is_one_line_without_the_password(fresh_db_url, tmp_path):
    wrong = fresh_db_url.replace(":postgres@", ":Wr0ngPassw0rd@")
    result = CliRunner().invoke(app, ["db", "push", "--db-url", wrong, "--migrations-dir", str(REPO_MIGRATIONS)])
    assert result.exit_code == 3
    assert "password authentication failed" in result.output
    assert "Wr0ngPassw0rd" not in result.output and "Traceback" not in result.output


def test_cli_push_names_the_failing_file_and_exits_non_zero(fresh_db_url, tmp_path):
    folder = tmp_path / "m"
    write(folder, "20240101000000_broken.sql", "create tabel oops (id int);")
    result = CliRunner().invoke(app, ["db", "push", "--db-url", fresh_db_url, "--migrations-dir", str(folder)])
    assert result.exit_code == 3
    assert "20240101000000_broken.sql" in result.output and "syntax error" in result.output


def test_cli_push_reads_the_url_from_dotenv(fresh_db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"SUPABASE_DB_URL={fresh_db_url}\n")
    write(tmp_path / "supabase" / "migrations", "20240101000000_a.sql", "create table public.a (id int);")
    result = CliRunner().invoke(app, ["db", "push"])
    assert result.exit_code == 0, result.output
    assert "applied 20240101000000" in result.output


def test_cli_push_without_any_url_says_where_to_set_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["db", "push"])
    assert result.exit_code == 2
    assert "SUPABASE_DB_URL" in result.output
