"""The MCP tools, as data: one list of specs, registered by one loop."""

from ..catalog import Catalog
from ..settings import Settings
from .common import Deps, ToolSpec
from .costs import cost_tools
from .edits import edit_tools
from .files import file_tools
from .generation import generation_tools
from .models import model_tools
from .tasks import task_tools


def tool_specs(catalog: Catalog, settings: Settings) -> list[ToolSpec]:
    """Every tool this server offers, core four first."""
    specs = [
        *generation_tools(catalog, settings.wait_seconds),
        *file_tools(),
        *model_tools(catalog),
        *task_tools(),
        *cost_tools(catalog),
        *edit_tools(catalog),
    ]
    return sorted(specs, key=lambda s: not s.core)


__all__ = ["Deps", "ToolSpec", "tool_specs"]
