"""VLM checkpoint lab: all logic of the dashboard, importable and tested without Streamlit."""

__version__ = "0.1.0"
"""Kept equal to ``pyproject.toml``'s version (a test checks); exports record it."""
