"""Shared fixtures: real databases and a real Redis, isolated per test run.

PostgreSQL and Redis are the shared servers of the machine (also used by CI),
so every test run creates its own PostgreSQL database and uses its own Redis
key prefix, and drops them at the end. A test that needs a server that cannot
be reached is skipped with a reason that names the server and the address.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check what holds, not how fast: Hypothesis' default 200 ms
# deadline per example turns a loaded 2-core CI machine into failures
# ("DeadlineExceeded", then "Flaky") that say nothing about the code.
settings.register_profile("intelshare", deadline=None)
settings.load_profile("intelshare")

PG_ADMIN_URL = os.environ.get("INTELSHARE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("INTELSHARE_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    if not _reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import psycopg

    admin = PG_ADMIN_URL
    name = f"intelshare_test_{RUN_ID}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL, once for SQLite and once for PostgreSQL.

    Each PostgreSQL test gets its own schema-free database copy by using a
    fresh database per test (cheap on PostgreSQL with a template-less CREATE).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base_url = request.getfixturevalue("postgres_server_url")
    import psycopg

    admin = PG_ADMIN_URL
    name = f"intelshare_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis server; tests must namespace keys with ``redis_prefix``."""
    if not _reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    import redis

    prefix = f"intelshare-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
