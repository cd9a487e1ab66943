"""Keep credentials from observer URLs out of records, log lines and printed output.

A URL such as ``postgresql://alice:s3cret@db/runs`` must reach the driver intact, but nothing we
write or print may contain ``s3cret``. :data:`REDACTOR` masks the credentials of every URL in a
text (a URL's password and credential query parameters such as ``?password=``, with the rules of
:func:`capreolus_opt.storage.mask_url`) and changes nothing outside URLs: a short password must
not turn ordinary words of captured output into asterisks. It doubles as a ``logging.Filter``,
so messages from Sacred, SQLAlchemy or pymongo that quote a URL are masked too, and as Sacred's
``captured_out_filter`` for the captured stdout/stderr.
"""

from __future__ import annotations

import logging

from capreolus_opt.storage import mask_url, mask_urls

__all__ = ["REDACTOR", "Redactor", "install_log_redaction", "mask_url", "mask_urls"]


class Redactor(logging.Filter):
    """Masks URL credentials in text (:meth:`redact`, also ``__call__``) and in log records."""

    def redact(self, text: str) -> str:
        """Return ``text`` with the credentials of every URL in it masked."""
        return mask_urls(text)

    __call__ = redact  # usable as Sacred's captured_out_filter

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the formatted message (and traceback) of ``record`` in place; never drops it."""
        message = record.getMessage()
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            # Pre-format the traceback so the handler prints the masked copy.
            record.exc_text = mask_urls(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


#: Process-wide redactor, attached to log handlers and used for every message we print.
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
