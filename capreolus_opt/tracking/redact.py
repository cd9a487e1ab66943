"""Keep passwords from observer URLs out of records, log lines and printed output.

A URL such as ``postgresql://alice:s3cret@db/runs`` must reach SQLAlchemy intact, but nothing we
write or print may contain ``s3cret``. :class:`Redactor` remembers every secret it has seen and
replaces it (and the URL's password field) with ``***`` in any text. It doubles as a
``logging.Filter`` so that messages from Sacred, SQLAlchemy or pymongo that quote a driver error
are redacted too, and as Sacred's ``captured_out_filter`` for the captured stdout/stderr.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def url_password(url: str) -> str | None:
    """Return the password of ``url`` (percent-decoded) or ``None`` when it has none."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (``user:***@host``).

    >>> redact_url("postgresql://alice:s3cret@db:5432/runs")
    'postgresql://alice:***@db:5432/runs'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


class Redactor(logging.Filter):
    """Replaces registered secrets with ``***`` in text and log records.

    Secrets are registered from URLs (:meth:`add_url`) and kept for the process lifetime: the
    same observer may be reported about (by Sacred's warnings) long after it was created.
    Both the raw and the percent-encoded form are masked, since error messages quote either.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_url(self, url: str) -> None:
        """Register the password of ``url`` (no-op when it has none)."""
        try:
            raw = urlsplit(url).password
        except ValueError:
            return
        if raw:
            with self._lock:
                self._secrets.update({raw, unquote(raw)})

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret replaced by ``***``."""
        # Longest first so that a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    __call__ = redact  # usable as Sacred's captured_out_filter

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the formatted message of ``record`` in place; never drops a record."""
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
            if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
                # Pre-format the traceback so the handler prints the redacted copy.
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


#: Process-wide redactor: every observer URL parsed by :mod:`urls` registers its password here.
REDACTOR = Redactor()


def install_log_redaction() -> None:
    """Attach :data:`REDACTOR` to every handler of the root logger and of ``sacred``.

    Filters on a logger do not apply to records propagated from child loggers, but filters on
    handlers do, so the redactor goes on the handlers. Idempotent.
    """
    loggers = [logging.getLogger(), logging.getLogger("sacred")]
    for logger in loggers:
        for handler in logger.handlers:
            if REDACTOR not in handler.filters:
                handler.addFilter(REDACTOR)
