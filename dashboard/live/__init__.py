"""Scoring checkpoints as they land: the watcher behind ``python -m dashboard watch`` and the live switch."""
