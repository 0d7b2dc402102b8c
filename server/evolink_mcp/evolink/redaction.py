"""Blanking a secret out of text that came from elsewhere: whole, or any run of its characters long enough to
matter (an echo cut short, or sent only in part, still gives most of the key away)."""

from __future__ import annotations

import re
from typing import Any

MIN_RUN = 8  # a run of the key this long is blanked; a shorter one gives little away
REDACTED = "[redacted]"


class Redactor:
    """`redactor.text(s)` / `redactor.data(json)`: `s` with every run of MIN_RUN or more of the secret's characters
    (the whole secret, a prefix, a suffix, any part) replaced by "[redacted]"."""

    def __init__(self, secret: str | None) -> None:
        run = min(MIN_RUN, len(secret or ""))
        self._run = run
        # Every part of the secret at least `run` long is covered by its `run`-long pieces.
        self._pieces = sorted({secret[i : i + run] for i in range(len(secret) - run + 1)}) if secret else []
        self._starts = re.compile(f"(?=({'|'.join(map(re.escape, self._pieces))}))") if self._pieces else None

    def text(self, text: str) -> str:
        if self._starts is None or not any(piece in text for piece in self._pieces):
            return text
        spans: list[list[int]] = []
        for match in self._starts.finditer(text):
            start, end = match.start(), match.start() + self._run
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        parts, done = [], 0
        for start, end in spans:
            parts += [text[done:start], REDACTED]
            done = end
        return "".join([*parts, text[done:]])

    def data(self, value: Any) -> Any:
        """Parsed JSON with every string (keys included) redacted: escapes like \\u0073 are decoded by then."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.data(item) for key, item in value.items()}
        return value
