"""The built-in offline conversation engine (no LLM needed): see engine.py."""

from demandly.engine.offline.engine import OfflineEngine

__all__ = ["OfflineEngine"]
