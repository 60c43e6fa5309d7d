"""Timeline: training curves with checkpoint markers; click a checkpoint to open it elsewhere.

Thin page: the view is :mod:`dashboard.ui.timeline_view`.
"""

from dashboard.ui.timeline_view import render_timeline

render_timeline()
