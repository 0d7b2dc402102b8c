"""EVOLINK_JOURNAL_URL: which PostgreSQL server holds the journal, checked at start-up and shown without its
password."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

ACCEPTED_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


class JournalURLError(ValueError):
    """Not a PostgreSQL URL we can use; the message says why and gives the accepted form, never the value."""


@dataclass(frozen=True)
class JournalURL:
    conninfo: str  # what libpq is given, password included: never logged
    shown: str  # the same without the password, for people (location, errors, Settings' repr)
    secrets: tuple[str, ...]  # the password as written and decoded

    def redact(self, text: str) -> str:
        """`text` (a driver's message, say) with the password, should it appear, blanked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_journal_url(raw: str) -> JournalURL:
    """The journal's database from EVOLINK_JOURNAL_URL; JournalURLError for anything but a PostgreSQL URL with a
    host and a database name."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port  # reading it checks it is a number from 0 to 65535
    except ValueError:
        port = 0
    if port == 0:
        raise JournalURLError(_refusal("its host or port is malformed (the port is a number from 1 to 65535)"))
    if parts.scheme not in ("postgresql", "postgres"):
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise JournalURLError(_refusal(f"it starts with {scheme}, not postgresql://"))
    if not parts.hostname:
        raise JournalURLError(_refusal("it names no host"))
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise JournalURLError(_refusal("it names no database (the path after the host)"))
    user = f"{parts.username}@" if parts.username else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    secrets = tuple(s for s in {parts.password or "", unquote(parts.password or "")} if s)
    return JournalURL(raw.strip(), f"postgresql://{user}{host}:{port or 5432}/{database}", secrets)


def _refusal(why: str) -> str:
    return (
        f"EVOLINK_JOURNAL_URL is not a usable PostgreSQL URL: {why}. The accepted form is {ACCEPTED_FORM} "
        "(unset it to keep the journal in SQLite in EVOLINK_STATE_DIR)."
    )
