"""Console adapter: chat with copss in a terminal, or drive it in-process from tests."""

from adapters.console.adapter import ConsoleAdapter, Said

__all__ = ["ConsoleAdapter", "Said"]
