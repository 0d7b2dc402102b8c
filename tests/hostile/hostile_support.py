"""What the hostile-upstream tests share besides fixtures: the key, the leak check, what the fixtures yield."""

from __future__ import annotations

from dataclasses import dataclass

from evolink_mcp.tools import Deps
from mcp_session import Session

# Random past its first characters, like a real key: no 8-character run of it occurs in ordinary text by chance.
API_KEY = "sk-Qm7vXc2LpR9tWz4YbN8kHs3JdF6gA1eU"


def leaked(text: str, secret: str = API_KEY) -> bool:
    """Whether `text` holds the secret or any 8-character run of it."""
    return any(secret[i : i + 8] in text for i in range(len(secret) - 7))


@dataclass
class Internal:
    """A service only the server's host can reach (on 127.0.0.2): what an attacker would like read back."""

    base_url: str
    hits: list[str]


@dataclass
class Connected:
    mcp: Session
    deps: Deps
