"""Hooks for other programs (training loops) into the dashboard's scoring and result store."""
