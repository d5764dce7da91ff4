"""Plugins broken on purpose, each in its own way."""
