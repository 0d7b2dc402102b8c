"""Context cost: bytes of tools/list as the stdio server sends it (compact JSON), total and per tool.

Every connected model reads this on every turn. The reference is the SDK's floor: a bare MCPServer with
four trivial tools, read the same way in the same run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import BENCH_DIR, PYTHON, Row, child_env, compact_json_bytes, evolink_argv, ratio, stdio_tools_list

CORE = ("generate_image", "check_task", "upload_file", "list_models")
CORE_TARGET = 6 * 1024


def kib(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.2f} KiB"


def tool_sizes(result: dict[str, object]) -> dict[str, dict[str, int]]:
    """Per tool: total bytes, and the bytes of its description, input schema and output schema."""
    sizes: dict[str, dict[str, int]] = {}
    for tool in result["tools"]:  # type: ignore[attr-defined]
        sizes[tool["name"]] = {
            "total": compact_json_bytes(tool),
            "description": len(tool.get("description", "").encode()),
            "input": compact_json_bytes(tool.get("inputSchema", {})),
            "output": compact_json_bytes(tool.get("outputSchema", {})) if "outputSchema" in tool else 0,
        }
    return sizes


def model_visible(tool: dict[str, object]) -> int:
    """Bytes of what an LLM API's tool definition carries: name, description and input schema."""
    return compact_json_bytes({k: tool[k] for k in ("name", "description", "inputSchema") if k in tool})


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-context-") as tmp:
        env = child_env(Path(tmp), EVOLINK_API_KEY="sk-bench-not-used")
        ours = stdio_tools_list(evolink_argv(), env).tools
        floor = stdio_tools_list([PYTHON, str(BENCH_DIR / "floor_server.py")], env).tools
    sizes = tool_sizes(ours)
    enum = next(t for t in ours["tools"] if t["name"] == "generate_image")["inputSchema"]["properties"]["model"]  # type: ignore[attr-defined]
    floor_total = compact_json_bytes(floor["tools"])
    core = sum(sizes[name]["total"] for name in CORE)
    seen = sum(model_visible(t) for t in ours["tools"] if t["name"] in CORE)  # type: ignore[attr-defined]
    floor_seen = sum(model_visible(t) for t in floor["tools"])  # type: ignore[attr-defined]
    rows = [
        Row(
            "tools/list, core four tools (compact JSON)",
            kib(core),
            kib(floor_total) + " (4 trivial tools)",
            ratio(core, floor_total),
            f"<= {kib(CORE_TARGET)}",
            core <= CORE_TARGET,
            f"includes the {len(enum.get('enum', []))}-model enum ({kib(compact_json_bytes(enum.get('enum', [])))})",
        ),
        Row(
            "  of which a model reads (name, description, inputSchema; info)",
            kib(seen),
            kib(floor_seen) + " (4 trivial tools)",
            ratio(seen, floor_seen),
            note="what an LLM API's tool definition carries (Anthropic: name, description, input_schema; "
            "OpenAI: name, description, parameters)",
        ),
        Row("tools/list, all tools (compact JSON)", kib(compact_json_bytes(ours["tools"])), kib(floor_total)),
    ]
    for name, size in sizes.items():
        rows.append(
            Row(
                f"  {name}",
                f"{size['total']} B",
                note=f"description {size['description']} B, input {size['input']} B, output {size['output']} B",
            )
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
