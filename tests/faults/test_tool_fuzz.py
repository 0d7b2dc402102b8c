"""Arbitrary argument payloads at every tool through the MCP client (Hypothesis).

Whatever arrives, a tool answers with a well-formed result (never a crash, never a protocol error), and a
call the server refuses sends nothing upstream. One server and client per tool, over real JSON-RPC in
memory, driven from Hypothesis's examples through a blocking portal; the sandbox is the session's.
"""

from __future__ import annotations

import base64
import io
import operator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fault_support import (
    CALL_TIMEOUT,
    QUICK_RETRY,
    assert_well_formed,
    not_about,
    refused_locally,
    settings_for,
    text_of,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult, Tool
from PIL import Image

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.catalog import load_catalog
from evolink_mcp.sandbox import SandboxServer
from mcp_session import TOOLS, CheckedClient

EXAMPLES_PER_TOOL = 40
# Payloads that once broke a tool: always tried, whatever Hypothesis draws.
FOUND_BEFORE: dict[str, list[dict[str, Any]]] = {
    # No HTTP header can carry this id as it is (it crashed the call, leaving the submission half-journaled).
    "generate_image": [{"prompt": "a red fox [sandbox:duration=0]", "client_request_id": "\x80 é\n🦊"}],
}

# -- arbitrary JSON ----------------------------------------------------------------------------------

huge_strings = st.builds(
    operator.mul, st.sampled_from(["a", "é", "🦊", "\x00", " ", "/", "%"]), st.integers(1000, 200_000)
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | huge_strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

# -- values close to valid, so that examples also reach past the argument validation -----------------


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def plausible_values(png: Path) -> dict[str, st.SearchStrategy[Any]]:
    catalog = load_catalog()
    encoded = base64.b64encode(png_bytes()).decode()
    references = st.sampled_from(
        [
            "https://example.com/a.png",
            str(png),
            png.as_uri(),
            "/no/such/file.png",
            "relative.png",
            "~/missing.png",
            "/etc/hostname",
            str(png.parent),
            "ftp://example.com/a.png",
            "http://[::1",
            "",
        ]
    ) | st.text(max_size=30)
    numbers = st.sampled_from([0, 0.2, 1, -1, 901, 10**30]) | st.floats(allow_nan=False, allow_infinity=False)
    return {
        "prompt": st.sampled_from(["a red fox", "", "   ", "a cat [sandbox:duration=0]"]) | st.text(max_size=60),
        "model": st.sampled_from([*catalog.ids, "nano-banana-2-lite", "nano-banana-pro", "no-such-model", ""]),
        "size": st.sampled_from(["auto", "1:1", "16:9", "1:8", "1024x1024", "4096x4096", "0x0", "1:0", "wide"]),
        "quality": st.sampled_from(["0.5K", "1K", "2K", "4K", "8K", "low", "high", "auto", ""]),
        "resolution": st.sampled_from(["1K", "2K", "4K", "high", ""]),
        "n": st.integers(-2, 20),
        "image_urls": st.lists(references, max_size=3),
        "mask_url": references,
        "callback_url": st.sampled_from(
            [
                "https://example.com/hook",
                "http://example.com/hook",
                "https://127.0.0.1/hook",
                "https://10.0.0.7/hook",
                "https://" + "a" * 2100 + ".com",
            ]
        )
        | st.text(max_size=30),
        "extra": st.dictionaries(
            st.sampled_from(
                ["seed", "negative_prompt", "watermark", "model_params", "model_params.thinking_level", "output_format"]
            )
            | st.text(max_size=12),
            json_values,
            max_size=3,
        ),
        "wait_seconds": numbers,
        "max_credits": numbers,
        "client_request_id": st.sampled_from(["fuzz-1", "fuzz-2", "", " "]) | st.text(max_size=140),
        "task_id": st.sampled_from(
            ["task-unified-1-abcdefgh", "", " ", "a/b", "../../etc", "task-x?y#z", "task-" + "x" * 300]
        )
        | st.text(max_size=40),
        "file_path": references,
        "file_url": references,
        "base64_data": st.sampled_from(
            [encoded, f"data:image/png;base64,{encoded}", "aGVsbG8=", "not base64!", "data:text/plain;base64,", ""]
        )
        | st.text(max_size=40),
        "upload_path": st.text(max_size=30),
        "file_name": st.sampled_from(["a.png", "../escape.png", "", "a/b.png"]) | st.text(max_size=30),
        "page": st.integers(-5, 500),
        "page_size": st.integers(-5, 500),
        "limit": st.integers(-5, 500),
        "mode": st.sampled_from([*sorted({m for s in catalog.models for m in s.modes}), "nope", ""]),
        "include_beta": st.booleans(),
        "status": st.sampled_from(["completed", "failed", "pending", "unknown", "submitted", ""])
        | st.text(max_size=20),
        "file_id": st.sampled_from(["file-abc", "a/b", "", " ", "?x", "x" * 300]) | st.text(max_size=30),
    }


def arguments_for(tool: Tool, plausible: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Argument dicts: the tool's own keys with plausible values (a few, or all), else any values and junk keys."""
    schema = tool.input_schema
    keys = list(schema.get("properties", {}))
    required = set(schema.get("required", []))

    def dicts(values: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
        usual = st.fixed_dictionaries(
            {k: v for k, v in values.items() if k in required},
            optional={k: v for k, v in values.items() if k not in required},
        )
        return usual | st.fixed_dictionaries({}, optional=values)  # required keys sometimes missing too

    near_valid = {key: plausible.get(key, json_values) for key in keys}
    optional = sorted(set(keys) - required)
    few_keys = (st.sets(st.sampled_from(optional), max_size=3) if optional else st.just(set())).flatmap(
        lambda chosen: st.fixed_dictionaries({k: v for k, v in near_valid.items() if k in required or k in chosen})
    )
    arbitrary = dicts({key: plausible.get(key, st.nothing()) | json_values for key in keys})
    junk = st.dictionaries(st.text(max_size=12), json_values, max_size=3)
    anything = st.builds(lambda junk, own: {**junk, **own}, junk, arbitrary)
    return st.integers(0, 3).flatmap(lambda pick: (anything, dicts(near_valid), few_keys, few_keys)[pick])


# -- the test ------------------------------------------------------------------------------------------


async def bounded_call(client: Client, name: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(CALL_TIMEOUT):
        return await client.call_tool(name, arguments)


def created_task_ids(sandbox: SandboxServer) -> set[str]:
    return {r.task_id for r in sandbox.state.requests("generations") if r.task_id}


@pytest.mark.slow
@pytest.mark.parametrize("name", TOOLS)
def test_any_arguments_to_any_tool_give_a_well_formed_result_and_refused_ones_send_nothing_upstream(
    name: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    png = tmp_path / "reference.png"
    png.write_bytes(png_bytes())
    plausible = plausible_values(png)
    deps = build_deps(
        settings_for(sandbox, tmp_path, wait_seconds=0.3, preview_max_bytes=0),
        allowed_dirs=None,
        retry=QUICK_RETRY,
    )
    portal: BlockingPortal
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(CheckedClient(build_server(deps), mode="legacy")) as client,
    ):
        (tool,) = [t for t in portal.call(client.list_tools).tools if t.name == name]

        @settings(
            max_examples=EXAMPLES_PER_TOOL,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(arguments=arguments_for(tool, plausible))
        def any_call(arguments: dict[str, Any]) -> None:
            logged_before = len(sandbox.state.requests())
            background = created_task_ids(sandbox)  # polls and downloads of these are background following

            result = portal.call(bounded_call, client, name, arguments)

            assert_well_formed(name, result, tool)
            sent = not_about(sandbox.state.requests()[logged_before:], background)
            if refused_locally(result):
                assert sent == [], f"refused, yet sent {[(r.method, r.path) for r in sent]}: {text_of(result)}"
            data = result.structured_content or {}
            if name == "generate_image" and result.is_error and data.get("status") == 400:
                pytest.fail(f"sent a request the service refused as invalid: {text_of(result)}")

        for found in FOUND_BEFORE.get(name, []):
            any_call = example(arguments=found)(any_call)
        any_call()
