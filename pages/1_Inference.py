"""Inference: image + prompt → streamed answer on the selected checkpoint; batch mode; history.

Thin page: the view is :mod:`dashboard.ui.inference_view`.
"""

from dashboard.ui.inference_view import render_inference

render_inference()
