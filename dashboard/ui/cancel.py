"""Is the browser session that started this work still there?

Streamlit keeps running a script whose tab was closed until the script next talks to the page;
a generation in a worker thread never does. The check below is handed to generation as its
``should_stop`` so a closed tab stops the model at the next token instead of keeping a core busy.
Every page that generates passes it (Inference single/batch, Comparison single example and
eval set, Attention capture/across checkpoints/pointing); the stopping itself is
:class:`dashboard.generation.CancelCheck`, which raises
:class:`~dashboard.generation.GenerationCancelled` so a cut-short answer is never kept.
"""

from __future__ import annotations

from collections.abc import Callable


def session_gone_check() -> Callable[[], bool]:
    """A callable that turns True once this script run's browser session has disconnected."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():  # bare mode / AppTest: there is no session to lose
        return lambda: False
    runtime, session_id = Runtime.instance(), ctx.session_id

    def gone() -> bool:
        return not runtime.is_active_session(session_id)

    return gone
