"""Checks of proposals: policy, lint and a sandboxed dry-run."""
