"""Shared fixtures: one real Postgres per test session, a fresh database per test module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supactl.database.connection import apply_local_bootstrap
from supactl.dev_stack.postgres_server import EmbeddedPostgres, create_database

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedPostgres:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def empty_db_url(pg_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    """A new database with Supabase's roles and auth functions, and nothing else."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-50:]
    url = create_database(pg_server.url(), name)
    apply_local_bootstrap(url)
    return url


@pytest.fixture(scope="module")
def db_url(empty_db_url: str) -> str:
    """A database with every migration of supabase/migrations applied."""
    from supactl.database.migrations import push

    push(empty_db_url, REPO_ROOT / "supabase" / "migrations")
    return empty_db_url


@pytest.fixture
def fresh_db_url(pg_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    """A new database for one test, with Supabase's roles and auth functions only."""
    name = "f_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[-55:]
    url = create_database(pg_server.url(), name)
    apply_local_bootstrap(url)
    return url


@pytest.fixture
def twilio():
    """A Twilio REST contract server (tests/contract_servers/twilio.py) for one test."""
    from tests.contract_servers.twilio import TwilioContractServer

    with TwilioContractServer() as server:
        yield server
