"""Backend choice (issue 29 "Divergence"): the Ray address comes from Settings, the load options go whole."""

from __future__ import annotations

import ast
from pathlib import Path

from dashboard.compare.backends import default_backend
from dashboard.compare.sweep import LocalBackend
from dashboard.config import LoadOptions, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_ray_address_from_secrets_toml_chooses_ray_with_the_pools_load_options(tmp_path: Path) -> None:
    """``VLMLAB_RAY_ADDRESS`` in secrets.toml used to be ignored (``os.environ`` only), and the Ray
    workers loaded without the runs roots the pool confines to."""
    from dashboard.compare.ray_backend import RayBackend

    settings = load_settings(env={"VLMLAB_RUNS_ROOT": str(tmp_path), "VLMLAB_ALLOW_PICKLE": "1"},
                             secrets={"VLMLAB_RAY_ADDRESS": " ray://head:10001 "})
    assert settings.ray_address == "ray://head:10001"
    backend = default_backend(lambda: None, settings)  # type: ignore[arg-type,return-value]
    assert isinstance(backend, RayBackend) and backend.address == "ray://head:10001"
    assert backend.load_options == settings.load_options()
    assert backend.load_options == LoadOptions(roots=(tmp_path,), allow_pickle=True, trust_remote_code=False)


def test_no_ray_address_uses_the_local_pool() -> None:
    settings = load_settings(env={})
    assert settings.ray_address is None
    made = []
    backend = default_backend(lambda: made.append(1) or "pool", settings)  # type: ignore[arg-type,return-value,func-returns-value]
    assert isinstance(backend, LocalBackend) and made == [1]


def test_sweep_does_not_import_the_ray_backend() -> None:
    """No import circle: ``ray_backend`` imports ``sweep``; ``sweep`` never imports ``ray_backend`` back."""
    tree = ast.parse((REPO / "dashboard" / "compare" / "sweep.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name and "ray_backend" in name for name in imported), imported
    assert "os.environ" not in (REPO / "dashboard" / "compare" / "sweep.py").read_text()
