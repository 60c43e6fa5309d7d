"""Settings read from environment variables (and optionally Streamlit secrets).

Kept in one place so that the CLI, the pages, the benchmarks and the tests all agree on
where runs live, where user data is written and how much memory models may take.

Every setting has an environment variable (``VLMLAB_*``); when running under Streamlit the
same names may be given in ``.streamlit/secrets.toml`` (environment wins).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dashboard.logs import LEVELS

ENV_PREFIX = "VLMLAB_"

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class ConfigError(ValueError):
    """A setting has a value we cannot interpret; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one dashboard process."""

    runs_roots: tuple[Path, ...] = (Path("runs"),)
    """Directories the user may browse. Every run/checkpoint path must resolve inside one."""
    data_dir: Path = Path(".vlmlab")
    """Where history (SQLite) and fallback result files are written."""
    memory_budget: str = "auto"
    """Bytes models may occupy: ``auto`` (a safe fraction of free memory), ``4GB``, ``0.5`` (fraction)."""
    device: str = "auto"
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``…"""
    allow_pickle: bool = False
    """Allow pickle-only ``.bin`` checkpoints (loaded with ``weights_only=True``)."""
    trust_remote_code: bool = False
    """Passed to transformers; off unless the user opts in."""
    max_image_pixels: int = 40_000_000
    """Pillow decompression-bomb bound for uploaded/eval images."""
    log_level: str = "WARNING"
    """Level of the ``dashboard`` loggers (DEBUG, INFO, WARNING, ERROR)."""
    ray_address: str | None = None
    """``VLMLAB_RAY_ADDRESS`` (``auto`` or ``ray://host:port``): eval sweeps run on that Ray cluster."""

    @property
    def default_runs_root(self) -> Path:
        return self.runs_roots[0]

    def load_options(self) -> LoadOptions:
        """The one set of options every checkpoint load of this process uses (pool, Ray worker, CLI)."""
        return LoadOptions(roots=self.runs_roots, allow_pickle=self.allow_pickle,
                           trust_remote_code=self.trust_remote_code, device=self.device)


@dataclass(frozen=True)
class LoadOptions:
    """How checkpoints are loaded, built once from :class:`Settings` and passed whole.

    The pool, a Ray actor and the CLI receive this object rather than loose flags, so a load
    anywhere confines reads to the same roots and refuses the same pickles and remote code.
    """

    roots: tuple[Path, ...] | None = None
    """Every file a load reads must lie in one of these; None: each checkpoint's own run folder."""
    allow_pickle: bool = False
    trust_remote_code: bool = False
    device: str = "auto"


def parse_bool(value: str | bool, name: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}: expected true/false, got {value!r}")


def parse_size(value: str, name: str = "value") -> int:
    """Parse ``"512MB"``, ``"4GiB"`` or a plain byte count into bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).upper() not in _SIZE_UNITS:
        raise ConfigError(f"{name}: expected a size like 4GB or 512MiB, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def _lookup(name: str, env: Mapping[str, str], secrets: Mapping[str, object]) -> str | None:
    key = ENV_PREFIX + name
    if key in env:
        return env[key]
    if key in secrets:
        return str(secrets[key])
    return None


def _absolute(path: str) -> Path:
    """``path`` with ``~`` expanded, made absolute against the working directory (symlinks kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def load_settings(env: Mapping[str, str] | None = None,
                  secrets: Mapping[str, object] | None = None) -> Settings:
    """Build :class:`Settings` from ``VLMLAB_*`` variables; unknown values raise ConfigError."""
    env = os.environ if env is None else env
    secrets = secrets or {}
    kwargs: dict[str, object] = {}
    # Relative roots and data dir are made absolute here, once, against the working directory
    # (the repo root for `streamlit run Home.py`): every path listed, shown or stored afterwards
    # is absolute, so nothing joins "runs" onto the root a second time.
    roots = _lookup("RUNS_ROOT", env, secrets)
    raw_roots = [p for p in roots.split(os.pathsep) if p] if roots else [str(p) for p in Settings.runs_roots]
    kwargs["runs_roots"] = tuple(_absolute(p) for p in raw_roots)
    kwargs["data_dir"] = _absolute(_lookup("DATA_DIR", env, secrets) or str(Settings.data_dir))
    budget = _lookup("MEMORY_BUDGET", env, secrets)
    if budget:
        if budget.strip().lower() != "auto":
            try:
                fraction = float(budget)
            except ValueError:
                parse_size(budget, ENV_PREFIX + "MEMORY_BUDGET")
            else:
                if fraction <= 0:
                    raise ConfigError(f"{ENV_PREFIX}MEMORY_BUDGET: must be positive, got {budget!r}")
        kwargs["memory_budget"] = budget.strip()
    device = _lookup("DEVICE", env, secrets)
    if device:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device.strip()):
            raise ConfigError(f"{ENV_PREFIX}DEVICE: expected auto, cpu, mps or cuda[:N], got {device!r}")
        kwargs["device"] = device.strip()
    for attr, name in (("allow_pickle", "ALLOW_PICKLE"), ("trust_remote_code", "TRUST_REMOTE_CODE")):
        raw = _lookup(name, env, secrets)
        if raw is not None:
            kwargs[attr] = parse_bool(raw, ENV_PREFIX + name)
    pixels = _lookup("MAX_IMAGE_PIXELS", env, secrets)
    if pixels:
        try:
            kwargs["max_image_pixels"] = int(pixels)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}MAX_IMAGE_PIXELS: expected an integer, got {pixels!r}") from exc
    level = _lookup("LOG_LEVEL", env, secrets)
    if level:
        if level.strip().upper() not in LEVELS:
            raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL: expected one of {', '.join(LEVELS)}, got {level!r}")
        kwargs["log_level"] = level.strip().upper()
    ray = _lookup("RAY_ADDRESS", env, secrets)
    if ray and ray.strip():
        kwargs["ray_address"] = ray.strip()
    return Settings(**kwargs)  # type: ignore[arg-type]
