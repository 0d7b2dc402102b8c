"""Logging to stderr (stdout carries the stdio protocol), with secrets redacted from every record."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .evolink.redaction import Redactor


class RedactSecrets(logging.Filter):
    """Blanks out secret values in a record's message and arguments, whoever logged it (libraries included)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]
        self._redactors = [Redactor(s) for s in self.secrets]  # a part of a secret, cut or echoed, too

    def redact(self, text: str) -> str:
        for redactor in self._redactors:
            text = redactor.text(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = self.redact(message)
            if record.exc_info and record.exc_info[1] is not None:
                clean_exc = self.redact(logging.Formatter().formatException(record.exc_info))
                clean = f"{clean}\n{clean_exc}"
                record.exc_info = None
                record.exc_text = None
            if clean != message or record.args:
                record.msg, record.args = clean, None
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """Ours: what configure_logging replaces when it is called again."""


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """One stderr handler on the root logger, redacting `secrets`; replaces earlier handlers of ours."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    root.setLevel(level.upper())
