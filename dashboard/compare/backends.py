"""Which sweep backend runs an eval: the in-process pool, or Ray when ``Settings.ray_address`` is set.

Kept apart from :mod:`dashboard.compare.sweep` (the engine both backends use) so that the Ray
backend can import the engine without the engine importing it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dashboard.compare.sweep import LocalBackend, SweepBackend

if TYPE_CHECKING:
    from dashboard.config import Settings
    from dashboard.models.pool import ModelPool


def default_backend(pool_factory: Callable[[], ModelPool], settings: Settings) -> SweepBackend:
    """Ray when ``settings.ray_address`` is set (``VLMLAB_RAY_ADDRESS``, env or secrets.toml; Ray is
    imported only then), else the local pool.

    The Ray workers get ``settings.load_options()`` whole, the very options the pool loads with,
    so a worker confines and refuses exactly what the pool does.
    """
    if not settings.ray_address:
        return LocalBackend(pool_factory())
    from dashboard.compare.ray_backend import RayBackend

    return RayBackend(settings.ray_address, options=settings.load_options())
