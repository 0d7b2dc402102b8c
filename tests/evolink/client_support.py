"""Helpers shared by the Evolink client tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
from typing import Any

import anyio
from PIL import Image

from evolink_mcp.evolink import EvolinkClient, RetryPolicy, Task

API_KEY = "sk-evolink-test-9f8e7d6c5b4a39281706"
MODEL = "nano-banana-2"
# Tiny delays: the retry policy's shape is under test, not its wall-clock length.
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def client_for(base_url: str, *, retry: RetryPolicy = FAST_RETRY, **kwargs: Any) -> EvolinkClient:
    """A client whose generation and files APIs are both served at `base_url`."""
    return EvolinkClient(API_KEY, base_url=base_url, files_base_url=base_url, retry=retry, **kwargs)


def generation(prompt: str = "a lighthouse at dusk", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, **fields}


async def wait_until_terminal(client: EvolinkClient, task_id: str, seconds: float = 5) -> Task:
    """Poll (bounded) until the task is no longer pending or processing."""
    with anyio.fail_after(seconds):
        while True:
            task = await client.get_task(task_id)
            if task.is_terminal:
                return task
            await anyio.sleep(0.01)
