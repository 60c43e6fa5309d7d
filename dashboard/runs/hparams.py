"""A run's configuration (hyper-parameters) from the sources that can be read without pickle.

Sources, in the order shown: ``add_hparams`` sessions in the event files, the run-level fields
of ``trainer_state.json`` (``train_batch_size``, ``num_train_epochs``, ``trial_params``, …), the
``TrainingArguments`` JSON that HF's ``TensorBoardCallback`` logs as the text summary ``args``,
and a ``training_args.json`` next to the run if one was saved. ``training_args.bin`` is a
pickle and is never opened. Values are shown as text; they label overlaid runs on the Timeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dashboard.runs.files import RunFileError, read_json

CONFIG_COLUMNS = ("key", "value", "source")
ARGS_TEXT_TAGS = ("args",)
ARGS_FILE = "training_args.json"
MAX_LABEL_KEYS = 3
LABEL_PRIORITY = ("learning_rate", "lr", "per_device_train_batch_size", "train_batch_size", "bsize", "batch_size",
                  "weight_decay", "num_train_epochs", "seed")


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)[:200]
    return str(value)


def _hparam_value(value: object) -> object:
    """``add_hparams`` values arrive as ``google.protobuf.Value`` dicts (number/string/bool)."""
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def _args_from_texts(texts: pd.DataFrame) -> dict[str, object]:
    """The ``TrainingArguments`` JSON HF's TensorBoardCallback logs as text (the latest one)."""
    if texts is None or texts.empty:
        return {}
    rows = texts[texts["tag"].isin(ARGS_TEXT_TAGS)]
    for text in reversed(rows["text"].tolist()):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return {}


def build_configuration(run_dir: Path, state_config: dict[str, object] | None,
                        hparams: dict[str, dict[str, object]], texts: pd.DataFrame,
                        problems: list[str]) -> pd.DataFrame:
    """One row per (key, source); ``hparams`` is folder -> hyper-parameters of that session."""
    rows: list[tuple[str, str, str]] = []
    for folder, values in sorted(hparams.items()):
        rows += [(k, _shown(_hparam_value(v)), f"add_hparams ({folder})") for k, v in sorted(values.items())]
    rows += [(k, _shown(v), "trainer_state.json") for k, v in (state_config or {}).items()]
    rows += [(k, _shown(v), "TensorBoard text 'args'") for k, v in sorted(_args_from_texts(texts).items())
             if v not in (None, "", [], {})]
    args_file = Path(run_dir) / ARGS_FILE
    if args_file.is_file():
        try:
            data = read_json(args_file, [run_dir], "json")
            if isinstance(data, dict):
                rows += [(str(k), _shown(v), ARGS_FILE) for k, v in sorted(data.items()) if v not in (None, "")]
        except RunFileError as exc:
            problems.append(str(exc))
    return pd.DataFrame(rows, columns=list(CONFIG_COLUMNS))


def empty_configuration() -> pd.DataFrame:
    return pd.DataFrame([], columns=list(CONFIG_COLUMNS))


def config_values(config: pd.DataFrame) -> dict[str, str]:
    """key -> value, the first source listed winning (add_hparams before trainer_state before args)."""
    out: dict[str, str] = {}
    for key, value in zip(config["key"], config["value"], strict=True):
        out.setdefault(str(key), str(value))
    return out


def distinguishing_labels(names: Sequence[str], configs: Sequence[pd.DataFrame]) -> list[str]:
    """Run names extended with the hyper-parameters that differ between them (overlay legend).

    ``lr=0.001, bs=8`` tells overlaid runs apart where folder names (dates, hashes) do not.
    """
    values = [config_values(c) for c in configs]
    if len(values) < 2:
        return list(names)
    keys = sorted({k for v in values for k in v})
    differing = [k for k in keys if len({v.get(k) for v in values}) > 1]
    differing.sort(key=lambda k: (LABEL_PRIORITY.index(k) if k in LABEL_PRIORITY else len(LABEL_PRIORITY), k))
    chosen = differing[:MAX_LABEL_KEYS]
    labels = []
    for name, v in zip(names, values, strict=True):
        shown = ", ".join(f"{k}={v[k]}" for k in chosen if k in v)
        labels.append(f"{name} ({shown})" if shown else name)
    return labels
