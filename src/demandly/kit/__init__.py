"""Shared plumbing. Imports no domain."""
