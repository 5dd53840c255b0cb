"""`facesvc keys` on SQLite and PostgreSQL: several scopes, expiry, last use, and a
database that was never migrated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app.cli import main
from app.cli.service import expires_at, expires_in
from app.core.model.pipeline import FacePipeline
from app.core.store import db
from tests.support.service import PG_ADMIN_URL, PG_TEST_DB, REQUIRE_POSTGRES, _postgres_available


def _create(capsys: pytest.CaptureFixture[str], *options: str) -> str:
    assert main(["keys", "create", "--name", "door", *options]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _listing(capsys: pytest.CaptureFixture[str], prefix: str) -> list[str]:
    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return next(line.split() for line in lines if line.startswith(prefix))


def _sql(url: str, statement: str, **values: object) -> None:
    async def run() -> None:
        engine = db.create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(statement), values)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def migrated(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    return database_url


def test_a_repeated_scope_flag_keeps_every_scope(
    migrated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _create(capsys, "--scope", "enroll", "--scope", "verify")
    prefix = key.split("_")[1]
    assert _listing(capsys, prefix)[1] == "enroll,verify"
    both = _create(capsys, "--scope", "read", "metrics", "--scope", "verify")
    assert _listing(capsys, both.split("_")[1])[1] == "metrics,read,verify"
    deleting = _create(capsys, "--scope", "enroll", "delete")
    assert _listing(capsys, deleting.split("_")[1])[1] == "delete,enroll"


def test_expiry_is_shown_and_an_expired_key_gets_401(
    migrated: str, pipeline: FacePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    key = _create(capsys, "--scope", "verify", "--expires-in", "30d")
    prefix = key.split("_")[1]
    row = _listing(capsys, prefix)
    # prefix scopes created(2) expires(2) last-used(never) revoked(-) name
    expires = datetime.strptime(" ".join(row[4:6]), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=2)
    assert row[6] == "never"

    app = create_app(Settings(database_url=migrated, _env_file=None), pipeline=pipeline)
    with TestClient(app) as client:
        assert client.get("/v1/models", headers={"X-API-Key": key}).status_code == 200
        assert _listing(capsys, prefix)[6] != "never"  # the use is recorded
        past = datetime.now(UTC) - timedelta(seconds=1)
        _sql(migrated, "UPDATE api_keys SET expires_at = :t WHERE prefix = :p", t=past, p=prefix)
        answer = client.get("/v1/models", headers={"X-API-Key": key})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert "expired" in answer.json()["detail"]
    assert _listing(capsys, prefix)[5].endswith("!")  # marked as expired in the list


def test_an_expiry_in_the_past_or_unreadable_is_refused(
    migrated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "create", "--name", "x", "--scope", "verify"]
    assert main([*argv, "--expires-at", "2020-01-01"]) == 2  # bad input: in the past
    assert "in the past" in capsys.readouterr().err
    for bad in (
        ["--expires-in", "30x"],
        ["--expires-in", "0d"],
        ["--expires-in", "99999999999d"],
        ["--expires-at", "soon"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, *bad])
        assert exit_.value.code == 3, bad  # usage
    with pytest.raises(SystemExit):  # one or the other
        main([*argv, "--expires-in", "1d", "--expires-at", "2099-01-01"])
    assert main(["keys", "list"]) == 0
    assert " x" not in capsys.readouterr().out  # nothing was created


def test_expiry_parsing() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert expires_in("30d", now) == now + timedelta(days=30)
    assert expires_in("90m", now) == now + timedelta(minutes=90)
    assert expires_in("2w", now) == now + timedelta(weeks=2)
    assert expires_at("2027-01-31") == datetime(2027, 1, 31, tzinfo=UTC)
    assert expires_at("2027-01-31T18:00+01:00") == datetime(2027, 1, 31, 17, tzinfo=UTC)


# ---------------------------------------------------------------- before `db upgrade`


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    reason = _postgres_available()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"FACESVC_REQUIRE_POSTGRES is set but {reason}", pytrace=False)
        pytest.skip(reason)
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{PG_TEST_DB}_fresh"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    url: str = request.getfixturevalue("fresh_postgres")
    return url


def test_db_commands_before_db_upgrade_say_what_to_run(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", fresh_url)
    monkeypatch.setenv("FACESVC_AUTO_MIGRATE", "false")  # SQLite's default would migrate
    for argv in (
        ["keys", "create", "--name", "x", "--scope", "admin"],
        ["keys", "list"],
        ["keys", "revoke", "abc"],
    ):
        assert main(argv) == 3, argv
        err = capsys.readouterr().err
        assert "the database has no tables; run `facesvc db upgrade`" in err, err
        assert "Traceback" not in err
    # behind this version's migrations: which revision, and the same advice
    assert main(["db", "upgrade", "--revision", "0001"]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 3
    err = capsys.readouterr().err
    assert "at revision 0001" in err and "run `facesvc db upgrade`" in err
    assert main(["db", "upgrade"]) == 0
    assert main(["keys", "create", "--name", "x", "--scope", "admin"]) == 0


def test_an_unknown_revision_is_a_usage_error(
    migrated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--revision", "9999"]) == 3
    err = capsys.readouterr().err
    assert "migrations:" in err and "9999" in err and "Traceback" not in err


def test_sqlite_migrates_itself_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", f"sqlite:///{tmp_path / 'auto.db'}")
    monkeypatch.delenv("FACESVC_AUTO_MIGRATE", raising=False)
    assert main(["keys", "create", "--name", "x", "--scope", "admin"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("fsk_")


def test_an_unreachable_database_is_a_setup_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert main(["keys", "list"]) == 3
    err = capsys.readouterr().err
    assert "cannot use the database" in err and "Traceback" not in err
