"""Orchestrator plugins: real agent backends and checks."""
