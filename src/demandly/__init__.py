"""Demandly: white-label AI chat and phone agents for agencies."""

__version__ = "0.1.0"
