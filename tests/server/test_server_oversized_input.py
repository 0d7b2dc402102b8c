"""Oversized input: refused before anything is sent, and never echoed back whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from evolink_mcp.catalog import load_catalog
from evolink_mcp.catalog.validation import MAX_CHARACTERS_PER_TOKEN, MAX_PROMPT_CHARACTERS
from evolink_mcp.sandbox import SandboxServer

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio

HUGE = 5_000_000  # characters: a reply quoting it whole would be megabytes
REPLY_LIMIT = 8_000  # bytes of a whole refusal (text and structured copy) quoting such a value


def reply_size(result: Any) -> int:
    return len(result.model_dump_json())


@pytest.mark.parametrize(
    ("tool", "arguments", "param"),
    [
        pytest.param("list_models", {"mode": "m" * HUGE}, "mode", id="list_models-mode"),
        pytest.param("generate_image", {"prompt": "a cat", "quality": "q" * HUGE}, "quality", id="quality"),
        pytest.param("generate_image", {"prompt": "a cat", "size": "9" * HUGE}, "size", id="size"),
        pytest.param("generate_image", {"prompt": "a cat", "model": "x" * HUGE}, "model", id="model"),
        pytest.param(
            "generate_image",
            {"prompt": "a cat", "extra": {"model_params.thinking_level": "t" * HUGE}},
            "thinking_level",
            id="extra-value",
        ),
        pytest.param("generate_image", {"prompt": "a cat", "extra": {"k" * HUGE: 1}}, "extra", id="extra-name"),
    ],
)
async def test_a_huge_invalid_value_is_refused_and_quoted_cut_short(
    tool: str, arguments: dict[str, Any], param: str, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call(tool, arguments, seconds=60)

    assert result.is_error
    text = mcp.text(result)
    assert param in text and "characters)" in text  # the value quoted, cut, with its length
    assert reply_size(result) < REPLY_LIMIT, f"a {HUGE}-character value made a {reply_size(result)}-byte reply"
    assert sandbox.state.requests("generations") == []


@pytest.mark.parametrize(
    ("model", "prompt_length"),
    [
        pytest.param("gemini-3.1-flash-image-preview", 10_000_000, id="10-MB-tokens-limit"),
        pytest.param("gemini-3.1-flash-image-preview", 2000 * MAX_CHARACTERS_PER_TOKEN + 1, id="just-over-certain"),
        pytest.param("grok-imagine-image-2.0", MAX_PROMPT_CHARACTERS + 1, id="no-documented-limit"),
    ],
)
async def test_a_prompt_certainly_over_every_documented_limit_is_refused_and_nothing_is_sent(
    model: str, prompt_length: int, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a" * prompt_length, "model": model}, seconds=60)

    assert result.is_error
    assert mcp.data(result)["error"]["category"] == "invalid_request"
    assert "prompt" in mcp.text(result) and "Charged: no" in mcp.text(result)
    assert reply_size(result) < REPLY_LIMIT
    assert sandbox.state.requests("generations") == []


async def test_a_prompt_only_possibly_over_a_token_limit_is_sent_with_a_warning(
    mcp: Session, sandbox: SandboxServer
) -> None:
    prompt = "a quiet harbour at dawn, " * 400  # 10,000 characters: 5x the 2,000 tokens, maybe within them

    result = await mcp.call("generate_image", {"prompt": prompt + " [sandbox:duration=0]", "wait_seconds": 0})

    assert not result.is_error, mcp.text(result)
    assert "Warning: prompt is" in mcp.text(result) and "may be refused" in mcp.text(result)
    assert len(sandbox.state.requests("generations")) == 1


def test_the_hard_prompt_limit_is_over_every_limit_the_catalog_documents() -> None:
    for spec in load_catalog().models:
        rule = spec.prompt
        if rule is None or rule.max is None:
            continue
        ceiling = rule.max * MAX_CHARACTERS_PER_TOKEN if rule.unit == "tokens" else rule.max
        assert ceiling < MAX_PROMPT_CHARACTERS, spec.id
