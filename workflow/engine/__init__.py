"""The engine: stateless handlers, one per message type."""

from .handlers import Ports, handle

__all__ = ["Ports", "handle"]
