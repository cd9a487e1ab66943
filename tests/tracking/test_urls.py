"""Observer URLs: parsing, reachability errors before training, password redaction."""

from __future__ import annotations

import logging

import pytest

from capreolus_opt.tracking import redact, urls
from capreolus_opt.tracking.observers import OwnIdFileStorageObserver, OwnIdMongoObserver
from capreolus_opt.tracking.sql_observer import SqlMetricsObserver


def test_redactor_masks_url_credentials_in_text_and_logs():
    r = redact.Redactor()
    assert r.redact("pw in postgresql://u:p%40ss@h/db and p@ss") == (
        "pw in postgresql://u:***@h/db and p@ss"  # only the URL is touched
    )
    logger = logging.getLogger("test.redact")
    handler = logging.Handler()
    seen = []
    handler.emit = lambda record: seen.append(record.getMessage())
    handler.addFilter(r)
    logger.addHandler(handler)
    try:
        logger.warning("could not connect to %s", "mongodb://u:p@ss@h/x?token=t0k")
    finally:
        logger.removeHandler(handler)
    assert seen == ["could not connect to mongodb://u:***@h/x?token=***"]


@pytest.mark.parametrize(
    ("url", "kind", "attr", "value"),
    [
        ("file://runs", OwnIdFileStorageObserver, "basedir", "runs"),
        ("runs", OwnIdFileStorageObserver, "basedir", "runs"),  # a folder, as readers take it
        ("file:///tmp/x/runs", OwnIdFileStorageObserver, "basedir", "/tmp/x/runs"),
        ("sqlite:///runs.db", SqlMetricsObserver, "display_url", "sqlite:///runs.db"),
        (
            "postgresql://al:pw@h:5/db",
            SqlMetricsObserver,
            "display_url",
            "postgresql://al:***@h:5/db",
        ),
        ("mongodb://al:pw@h:27017/exps", OwnIdMongoObserver, "display_url", None),
    ],
)
def test_observer_from_url_kinds(url, kind, attr, value):
    observer = urls.observer_from_url(url)
    assert type(observer) is kind
    if value is not None:
        assert getattr(observer, attr) == value
    assert "pw" not in repr(observer).replace("psycopg", "")
    urls.close_observers([observer])


def test_mongo_url_database_name_and_masked_repr():
    observer = urls.observer_from_url("mongodb://al:topsecret@h:27017/exps")
    assert observer.runs.database.name == "exps"
    assert "topsecret" not in repr(observer) and "***" in repr(observer)
    observer.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x/runs", "unsupported run location"),
        ("mysql://u@h/db", "unsupported run location"),
        ("mongodb://h/exps/sub", "not a MongoDB database name"),
        ("sqlite:///", "names no database file"),
        ("postgresql://u@h/", "names no database"),
        ("file://", "names no folder"),
    ],
)
def test_bad_urls_raise_value_error_naming_the_url(url, message):
    with pytest.raises(ValueError, match=message) as err:
        urls.observer_from_url(url)
    assert repr(url) in str(err.value)


def test_bad_url_error_hides_password():
    with pytest.raises(ValueError) as err:
        urls.observer_from_url("ftp://me:hunter2@h/x")
    assert "hunter2" not in str(err.value) and "me:***@h" in str(err.value)


def test_unreachable_observers_fail_before_start_without_password(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(urls, "MONGO_TIMEOUT_MS", 200)
    cases = [
        f"file://{blocker}/runs",
        f"sqlite:///{tmp_path}/missing/dir/r.db",
        "postgresql://u:Sup3rSecret@127.0.0.1:9/db",
        "mongodb://u:Sup3rSecret@127.0.0.1:9/db",
    ]
    for url in cases:
        observer = urls.observer_from_url(url)
        with pytest.raises(urls.ObserverUnreachableError, match="not reachable") as err:
            urls.check_reachable([observer])
        urls.close_observers([observer])
        assert "Sup3rSecret" not in str(err.value)
        assert redact.mask_url(url) in str(err.value) or "FileStorage" in str(err.value)
