"""The MCP tools, as data: one list of specs, registered by one loop."""

from ..catalog import Catalog
from .common import Deps, ToolSpec
from .costs import cost_tools
from .edits import edit_tools
from .files import file_tools
from .generation import generation_tools
from .models import model_tools
from .tasks import task_tools


def tool_specs(catalog: Catalog, default_wait: float) -> list[ToolSpec]:
    """Every tool this server offers, core four first; `default_wait` is generate_image's wait_seconds default."""
    specs = [
        *generation_tools(catalog, default_wait),
        *file_tools(),
        *model_tools(catalog),
        *task_tools(),
        *cost_tools(catalog),
        *edit_tools(catalog),
    ]
    return sorted(specs, key=lambda s: not s.core)


__all__ = ["Deps", "ToolSpec", "tool_specs"]
