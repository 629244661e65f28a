"""pipeline.redact: every form a secret can take in a URI, DSN, JSON or message is masked."""

from __future__ import annotations

import logging

import pytest

from pipeline.redact import RedactingFilter, redact, redact_obj


@pytest.mark.parametrize("text, expected", [
    ("postgresql://bob:s3cr3t@db:5432/x", "postgresql://bob:***@db:5432/x"),
    ("postgresql://bob@db/x?password=s3cr3t&sslmode=require", "postgresql://bob@db/x?password=***&sslmode=require"),
    ("host=db port=5432 user=bob password=s3cr3t dbname=x", "host=db port=5432 user=bob password=*** dbname=x"),
    ("host=db password='se cret' dbname=x", "host=db password='***' dbname=x"),
    ('{"login": "x", "password": "s3cr3t"}', '{"login": "x", "password": "***"}'),
    ("key AKIAABCDEFGHIJKLMNOP secret aws_secret_access_key=ab/cd+ef", "key AKIA**************** secret aws_secret_access_key=***"),
    ("s3://bucket/key?X-Amz-Security-Token=abc", "s3://bucket/key?X-Amz-Security-Token=***"),
    ("token=abc;pwd=zz", "token=***;pwd=***"),
    ("http://127.0.0.1:5000/#/models/x", "http://127.0.0.1:5000/#/models/x"),
    ("run failed at ingest: cannot connect to postgresql://u:p@h/db", "run failed at ingest: cannot connect to postgresql://u:***@h/db"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_obj_and_the_log_filter(caplog):
    record = {"source": "postgres table t at postgresql://u:pw@h/db", "nested": [{"reason": "password=pw"}], "n": 3}
    assert redact_obj(record) == {"source": "postgres table t at postgresql://u:***@h/db",
                                  "nested": [{"reason": "password=***"}], "n": 3}
    logger = logging.getLogger("driftline.test.redact")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda r: seen.append(r.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("connecting to %s", "postgresql://u:pw@h/db")
    finally:
        logger.removeHandler(handler)
    assert seen == ["connecting to postgresql://u:***@h/db"]
