"""The local record of every submission: intent before the POST, then task id, status, results, files.

One interface (`base.Journal`), two backends: SQLite in EVOLINK_STATE_DIR (the default, `sqlite`), or the
PostgreSQL server EVOLINK_JOURNAL_URL names (`postgres`, shared by replicas; its driver imported only then).
"""

from .base import LOCK_WAIT_SECONDS, Journal, JournalError, open_journal
from .records import (
    PROMPT_PREVIEW,
    REFUSED,
    SINGLE_TENANT,
    SUBMITTED,
    SUBMITTING,
    UNKNOWN,
    TaskRecord,
    TaskSummary,
    entry_line,
    summarize_entry,
    tenant_of,
)
from .sqlite import JOURNAL_FILE, OWNERS_DIR, SqliteJournal

__all__ = [
    "JOURNAL_FILE",
    "LOCK_WAIT_SECONDS",
    "OWNERS_DIR",
    "PROMPT_PREVIEW",
    "REFUSED",
    "SINGLE_TENANT",
    "SUBMITTED",
    "SUBMITTING",
    "UNKNOWN",
    "Journal",
    "JournalError",
    "SqliteJournal",
    "TaskRecord",
    "TaskSummary",
    "entry_line",
    "open_journal",
    "summarize_entry",
    "tenant_of",
]
