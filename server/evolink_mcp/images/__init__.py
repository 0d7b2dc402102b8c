"""Generating images, MCP-free: the use cases (service), polling, background following, saved results, previews."""

from .polling import Clock
from .service import ImageService, PreparedRequest, TaskOutcome

__all__ = ["Clock", "ImageService", "PreparedRequest", "TaskOutcome"]
