"""Where a run is stored: one parser for every observer URL, and the SQL schema.

Writers (``capreolus-opt train``'s observers), readers (``load_runs``, ``compare``...), ``--resume``
and the sweep's pre-check all parse locations here, so they accept the same URLs with the same
rules and name them the same (masked) way:

==============================================  ===============================================
``DIR`` or ``file://DIR`` (``file:///abs/dir``)  Sacred FileStorage folder
``sqlite:///PATH``                              SQLite file (our SQL observer's schema)
``postgresql://user[:pw]@host[:port]/db``       PostgreSQL, psycopg 3 driver; also ``postgres://``
``postgresql+psycopg:///db?host=/run/pg``       idem, explicit driver / Unix socket
``mongodb://[user:pw@]host[:port]/db``          MongoDB (``mongodb+srv://`` too); db ``sacred``
==============================================  ===============================================

Other schemes (``mysql://``...) are refused everywhere: we neither ship nor test their drivers.
Credentials (a URL's password, and query parameters such as ``password=``) never appear in
:attr:`Location.shown`, in ``repr`` or in :func:`mask_urls`' output.

The SQL schema and engines live in :mod:`capreolus_opt.storage.sql` (it imports SQLAlchemy;
this module imports nothing heavy, so ``--help`` and file-only runs stay fast).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

Kind = Literal["file", "sql", "mongo"]
MASK = "***"

#: Sacred's own default database name for ``MongoObserver``.
MONGO_DEFAULT_DB = "sacred"
#: A store that cannot be reached says so in seconds, not a driver's 30 s or more.
MONGO_TIMEOUT_MS = 5000
# Also bounds each reconnect attempt of an observer whose server went away mid-run, so a retry
# never holds up a heartbeat for minutes.
POSTGRES_CONNECT_TIMEOUT_S = 5
#: Several runs sharing one SQLite file wait for each other's write locks (default 5 s).
SQLITE_BUSY_TIMEOUT_S = 60

# Query parameters whose value is a credential (libpq's ``password``, Mongo's ``authSource`` is
# not one; tokens and keys of cloud drivers are).
_SECRET_PARAMS = re.compile(r"pass(word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key", re.I)
_PSYCOPG = "postgresql+psycopg"  # SQLAlchemy's default PostgreSQL driver, psycopg2, is not shipped
_SQL_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": _PSYCOPG,
    "postgres": _PSYCOPG,
    _PSYCOPG: _PSYCOPG,
}
_MONGO_SCHEMES = ("mongodb", "mongodb+srv")
EXPECTED = "a folder, file://DIR, sqlite:///PATH, postgresql://user@host/db or mongodb://host/db"


class LocationError(ValueError):
    """A run location (observer URL, source) is malformed; the message shows it masked."""


@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed run store.

    Attributes:
        kind: ``"file"``, ``"sql"`` or ``"mongo"``.
        url: the text as given, credentials included: pass it to drivers only, never print it.
        target: what the driver opens: the folder path (file), the SQLAlchemy URL with the
            psycopg 3 driver (sql), the client URL (mongo).
        shown: the URL with every credential masked; what messages and records use.
        database: the MongoDB database name (None for other kinds).
    """

    kind: Kind
    url: str = dataclasses.field(repr=False)
    target: str = dataclasses.field(repr=False)
    shown: str
    database: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sql" and self.target.startswith("sqlite")

    @property
    def sqlite_path(self) -> str | None:
        """The database file of a ``sqlite:///`` location (None for other kinds)."""
        if not self.is_sqlite:
            return None
        return unquote(self.target.split("://", 1)[1][1:].split("?", 1)[0])

    @property
    def has_credentials(self) -> bool:
        """True when the URL carries a secret (it must then never go on a command line)."""
        return self.shown != self.url

    def __str__(self) -> str:
        return self.shown


def mask_url(url: str) -> str:
    """``url`` with its password and credential query parameters replaced by ``***``.

    >>> mask_url("postgresql://alice:s3cret@db:5432/runs?sslmode=require&password=x")
    'postgresql://alice:***@db:5432/runs?sslmode=require&password=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAMS.fullmatch(key) for key, _ in pairs):
            masked = [(k, MASK if _SECRET_PARAMS.fullmatch(k) else v) for k, v in pairs]
            query = urlencode(masked, safe="*/:")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # urlunsplit would also rewrite sqlite:///x as sqlite:/x
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# A URL in free text: scheme://, then anything up to whitespace or a closing quote/bracket.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{}]+")


def mask_urls(text: str) -> str:
    """Mask the credentials of every URL in ``text``; nothing outside URLs changes."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def parse_location(text: str) -> Location:
    """Parse a run store given as a folder path or URL (see the module docstring).

    Raises:
        LocationError: unknown scheme, no folder/file/database, a bad port, a Mongo database
            name MongoDB would refuse. The message shows the location masked.
    """
    if not isinstance(text, str) or not text.strip():
        raise LocationError(f"empty run location {text!r}: expected {EXPECTED}.")
    shown = mask_url(text)
    if "://" not in text:
        return Location("file", text, os.path.expanduser(text), shown)
    scheme = text.split("://", 1)[0].lower()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        detail = "its port is not a number" if "port" in str(exc).lower() else str(exc)
        raise LocationError(f"run location {shown!r} is not a valid URL: {detail}.") from None
    if scheme == "file":
        path = unquote(parts.netloc + parts.path)  # file://runs relative, file:///abs absolute
        if not path:
            raise LocationError(f"run location {shown!r} names no folder: expected file://DIR.")
        return Location("file", text, os.path.expanduser(path), shown)
    if scheme in _SQL_SCHEMES:
        return _sql_location(text, scheme, parts, shown)
    if scheme in _MONGO_SCHEMES:
        database = unquote(parts.path.strip("/")) or MONGO_DEFAULT_DB
        if re.search(r"[/\\. \"$]", database):
            raise LocationError(
                f"run location {shown!r}: {database!r} is not a MongoDB database name "
                "(no '/', '\\', '.', ' ', '\"' or '$'); expected mongodb://host/DBNAME."
            )
        return Location("mongo", text, text, shown, database)
    raise LocationError(
        f"unsupported run location {shown!r} (scheme {scheme!r}): expected {EXPECTED}."
    )


def _sql_location(text: str, scheme: str, parts, shown: str) -> Location:
    target = _SQL_SCHEMES[scheme] + text[len(scheme) :]
    if scheme == "sqlite":
        if not text.split("://", 1)[1].strip("/"):
            raise LocationError(f"run location {shown!r} names no database file: sqlite:///PATH.")
    elif not parts.path.strip("/"):
        raise LocationError(f"run location {shown!r} names no database: expected .../DBNAME.")
    return Location("sql", text, target, shown)
