"""Secrets never leave a run: redaction of every password form a URI, DSN or message can carry.

Contract: :func:`redact` replaces, in any text, the secret part of

* URL user-info: ``postgresql://user:secret@host`` -> ``postgresql://user:***@host``;
* query parameters and key/value pairs named like a secret (``password``, ``passwd``, ``pwd``,
  ``secret``, ``token``, ``aws_secret_access_key``, ``sslpassword``, ...):
  ``?password=secret``, ``password='se cret'``, ``"password": "secret"``;
* AWS access key ids (``AKIA...``/``ASIA...``) and the 40-character secret that follows a
  secret-named key.

:func:`redact_obj` applies it to every string of a JSON-like value; :class:`RedactingFilter` to
log records. Records, step results, MLflow tags, log lines and CLI errors go through them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
_SECRET_KEYS = r"(?:password|passwd|pwd|passphrase|secret|secret_access_key|aws_secret_access_key|token|" \
               r"session_token|aws_session_token|api_key|apikey|sslpassword|private_key)"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<secret>[^@/?#\s]*)@")
_QUERY = re.compile(rf"(?i)(?P<key>[?&;]{_SECRET_KEYS}=)(?P<secret>[^&;#\s'\"]*)")
_KEY_VALUE = re.compile(
    rf"(?i)(?P<key>\b{_SECRET_KEYS}\b[\"']?\s*[:=]\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^\s,;&}}\])]+)")
_AWS_KEY_ID = re.compile(r"\b(?P<prefix>AKIA|ASIA)[0-9A-Z]{16}\b")


def redact(text: Any) -> Any:
    """``text`` with every secret masked (non-strings are returned unchanged)."""
    if not isinstance(text, str) or not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    out = _QUERY.sub(lambda m: f"{m['key']}{MASK}", out)
    out = _KEY_VALUE.sub(lambda m: f"{m['key']}{_quoted_mask(m['secret'])}", out)
    return _AWS_KEY_ID.sub(lambda m: f"{m['prefix']}{'*' * 16}", out)


def _quoted_mask(secret: str) -> str:
    if secret[:1] in "'\"" and secret[-1:] == secret[:1]:
        return f"{secret[0]}{MASK}{secret[0]}"
    return MASK


def redact_obj(value: Any) -> Any:
    """Every string in a JSON-like value (dicts, lists, tuples) redacted; keys are kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_obj(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
