"""capreolus_opt.storage: one parser for every run location, masking, read-only SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from capreolus_opt.storage import (
    Location,
    LocationError,
    mask_url,
    mask_urls,
    parse_location,
)


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("runs", "file", "runs"),
        ("file://runs", "file", "runs"),
        ("file:///abs/runs", "file", "/abs/runs"),
        ("sqlite:///runs.db", "sql", "sqlite:///runs.db"),
        ("sqlite:////abs/runs.db", "sql", "sqlite:////abs/runs.db"),
        ("postgresql://u@h/db", "sql", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h:5433/db", "sql", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg:///db?host=/run/pg", "sql", "postgresql+psycopg:///db?host=/run/pg"),
        ("mongodb://h:27017/exps", "mongo", "mongodb://h:27017/exps"),
    ],
)
def test_forms_parse_to_one_kind_and_target(text, kind, target):
    location = parse_location(text)
    assert (location.kind, location.target) == (kind, target)
    assert location.shown == text  # nothing to mask


def test_mongo_database_is_the_same_rule_for_writer_and_reader():
    assert parse_location("mongodb://h/exps").database == "exps"
    assert parse_location("mongodb://h").database == "sacred"
    assert parse_location("mongodb://h/").database == "sacred"
    with pytest.raises(LocationError, match="'exps/sub' is not a MongoDB database name"):
        parse_location("mongodb://h/exps/sub")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mysql://u@h/db", "unsupported run location 'mysql://u@h/db'"),
        ("ftp://me:hunter2@h/x", "unsupported run location 'ftp://me:***@h/x'"),
        ("postgresql://u:pw@h:notaport/db", "its port is not a number"),
        ("sqlite://", "names no database file"),
        ("postgresql://h/", "names no database"),
        ("file://", "names no folder"),
        ("", "empty run location"),
    ],
)
def test_bad_locations_are_clear_errors_without_secrets(text, message):
    with pytest.raises(LocationError) as err:
        parse_location(text)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value) and ":pw@" not in str(err.value)


def test_masking_covers_userinfo_and_query_credentials():
    url = "postgresql://alice:S3cret@db:5432/runs?sslmode=require&password=S3cret&token=t0k"
    shown = mask_url(url)
    assert "S3cret" not in shown and "t0k" not in shown
    assert shown.startswith("postgresql://alice:***@db:5432/runs?")
    assert "sslmode=require" in shown
    location = parse_location(url)
    assert location.has_credentials and "S3cret" not in repr(location) + str(location)
    assert not parse_location("sqlite:///x.db").has_credentials


def test_masking_touches_urls_only():
    # A one-letter password must not turn ordinary words into asterisks.
    text = "Running command 'train'\nno runs found in postgresql://bob:g@h/db, giving up"
    assert mask_urls(text) == (
        "Running command 'train'\nno runs found in postgresql://bob:***@h/db, giving up"
    )
    quoted = "error: 'mongodb://u:pw@h/x' and \"sqlite:///a.db\""
    assert mask_urls(quoted) == "error: 'mongodb://u:***@h/x' and \"sqlite:///a.db\""


def test_reading_never_creates_a_sqlite_file(tmp_path):
    from capreolus_opt.storage.sql import sql_engine

    missing = tmp_path / "typo.db"
    with pytest.raises(LocationError, match="no SQLite database"):
        sql_engine(parse_location(f"sqlite:///{missing}"), read_only=True)
    assert not missing.exists()
    real = tmp_path / "runs.db"
    sqlite3.connect(real).execute("CREATE TABLE t (x)").connection.commit()
    engine = sql_engine(parse_location(f"sqlite:///{real}"), read_only=True)
    import sqlalchemy as sa

    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()


def test_location_repr_never_shows_the_raw_url():
    location = Location("sql", "postgresql://a:b@h/d", "postgresql+psycopg://a:b@h/d", "x")
    assert "a:b" not in repr(location)
