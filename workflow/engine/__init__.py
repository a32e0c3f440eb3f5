"""The engine: stateless handlers, one per message type."""

from .handlers import Ports, announce, handle

__all__ = ["Ports", "announce", "handle"]
