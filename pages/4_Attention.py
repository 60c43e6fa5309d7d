"""Attention: where does the model look while it writes each token — and how does that develop over training?

Thin page: the view is :mod:`dashboard.ui.attention_view`.
"""

from dashboard.ui.attention_view import render_attention

render_attention()
