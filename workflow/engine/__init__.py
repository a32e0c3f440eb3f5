"""The engine: stateless handlers, one per message type."""

from .handlers import HANDLERS, Ports, handle

__all__ = ["HANDLERS", "Ports", "handle"]
