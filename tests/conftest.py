"""Shared fixtures: tiny models built from configs and a small, genuinely trained demo run.

Nothing here downloads anything; every model is built locally in seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny LLaVA checkpoint folder (safetensors + processor), ~0.7 MB."""
    from dashboard.demo.modeling import save_tiny_llava

    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four identical-size checkpoint folders (``run/checkpoint-{1..4}``): pool and pool-panel tests."""
    root = tmp_path_factory.mktemp("pool-run") / "run"
    out = []
    for step in range(1, 5):
        target = root / f"checkpoint-{step}"
        shutil.copytree(tiny_llava_dir, target)
        out.append(target)
    return out


def _demo_source_hash() -> str:
    """Hash of the demo builder's source: a cached demo run is reused only while it is unchanged."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "dashboard" / "demo").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _built_demo_run(request: pytest.FixtureRequest) -> Path:
    """The cached, untouched build of the test-preset demo run (built on first use; never handed to a test)."""
    from dashboard.demo.build import build_demo_run

    cached = Path(request.config.cache.mkdir(f"demo-run-test-seed0-{_demo_source_hash()}"))
    if not (cached / "demo" / "trainer_state.json").is_file():
        staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix="staging-"))
        build_demo_run(staging / "demo", preset="test", seed=0)
        shutil.rmtree(cached, ignore_errors=True)
        try:
            os.replace(staging, cached)
        except OSError:  # another session finished first; use its copy
            shutil.rmtree(staging, ignore_errors=True)
    return cached / "demo"


@pytest.fixture(scope="session")
def demo_runs_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs root holding ``demo/``: a small demo run trained with the "test" preset.

    Training takes a while on 2 cores, so the built run is kept in pytest's cache directory,
    keyed by the builder's source hash, and copied into a fresh temp root for each session
    (tests may modify their copy).
    """
    root = tmp_path_factory.mktemp("runs")
    shutil.copytree(_built_demo_run(request), root / "demo")
    return root


@pytest.fixture()
def pristine_demo_runs_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A runs root with a fresh copy of the demo run, for a test that must see it as built (the session's copy
    carries what earlier tests saved into it: scores, comparisons, …)."""
    root = tmp_path / "runs"
    shutil.copytree(_built_demo_run(request), root / "demo")
    return root


@pytest.fixture(scope="session")
def demo_run_dir(demo_runs_root: Path) -> Path:
    return demo_runs_root / "demo"


@pytest.fixture()
def app_env(demo_runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the demo runs root and a fresh data dir; returns the data dir."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(demo_runs_root))
    monkeypatch.setenv("VLMLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("VLMLAB_MEMORY_BUDGET", "1GB")
    monkeypatch.chdir(REPO_ROOT)
    return data_dir


@pytest.fixture()
def own_demo_root(app_env: Path, demo_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo run as the app's runs root, so saved eval results never leak into other tests."""
    root = tmp_path / "runs"
    # without eval_results: earlier tests (browser, headless eval) may have saved scores in the shared demo run
    shutil.copytree(demo_run_dir, root / "demo", ignore=shutil.ignore_patterns("eval_results"))
    monkeypatch.setenv("VLMLAB_RUNS_ROOT", str(root))
    return root / "demo"


@pytest.fixture()
def readme_clone(demo_runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout laid out as the README's launch leaves it: the app's files, the demo in ./runs/demo,
    no ``VLMLAB_*`` variable set, and the checkout as the working directory (issue 11).

    The app's files are symlinks into this repository, so the code under test is this tree's.
    """
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Home.py", "pages", "dashboard", ".streamlit"):
        (clone / name).symlink_to(REPO_ROOT / name)
    shutil.copytree(demo_runs_root / "demo", clone / "runs" / "demo")
    for key in [k for k in os.environ if k.startswith("VLMLAB_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(clone)
    return clone


@pytest.fixture(scope="session")
def resumed_run_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs root holding ``proj/resumed``: a tiny GPT-2 trained by ``Trainer`` to step 14, then
    resumed from checkpoint-8 to step 20 by a second process (see ``tests/runs/resume_kit.py``).
    Built once and kept in pytest's cache, keyed by the kit's source."""
    from tests.runs.resume_kit import build_resumed_run

    kit = REPO_ROOT / "tests" / "runs" / "resume_kit.py"
    cached = Path(request.config.cache.mkdir(f"resumed-run-{hashlib.sha256(kit.read_bytes()).hexdigest()[:16]}"))
    if not (cached / "run" / "eval_results.json").is_file():
        staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix="staging-"))
        build_resumed_run(staging / "run")
        shutil.rmtree(cached, ignore_errors=True)
        try:
            os.replace(staging, cached)
        except OSError:  # another session finished first; use its copy
            shutil.rmtree(staging, ignore_errors=True)
    root = tmp_path_factory.mktemp("resumed-root")
    shutil.copytree(cached / "run", root / "proj" / "resumed")
    return root
