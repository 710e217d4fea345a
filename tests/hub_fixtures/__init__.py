"""Locally built stand-ins for TF Hub modules, saved as test fixtures (no network needed)."""
