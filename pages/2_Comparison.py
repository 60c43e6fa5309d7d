"""Comparison: one example, or a whole eval set, across 2–8 checkpoints of the selected run.

Thin page: the view is :mod:`dashboard.ui.comparison_view`.
"""

from dashboard.ui.comparison_view import render_comparison

render_comparison()
