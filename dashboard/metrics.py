"""The one metric registry: every score the app shows is defined, scored, ranked and formatted here.

Why one place: the Inference batch table, the Comparison page, the Attention page's pointing
check, the demo trainer's eval and the Timeline's best-checkpoint choice must agree, so the same
output scores the same on every page. Modelled on lmms-eval's
``register_metric(name, higher_is_better=..., aggregation=...)``.

A :class:`Metric` says how to score one answer (answer metrics only: logged metrics such as
``eval_loss`` are read, not computed), whether higher is better (the Timeline's min/max), how to
aggregate per-example scores (mean), and which display format its values take
(:mod:`dashboard.formatting`). :func:`describe` gives the same answer for any logged name
(``eval_accuracy_colour``, ``train_loss``), registered or not.

Answers are compared in one normal form, :func:`normalize_answer` (SQuAD conventions: Unicode
NFKC, case-folded, punctuation/symbols and English articles removed, whitespace collapsed), so
"The Red." and "red" are the same answer everywhere.

To add a metric: decorate a ``(output, reference) -> float`` function with :func:`register_metric`
below; it is then offered by the Comparison page and saved with the scores.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from dashboard.formatting import ValueKind, fmt_value, plotly_format

Scorer = Callable[[str, str], float]
Aggregation = Callable[[Sequence[float]], float]
Mode = Literal["min", "max"]

AGGREGATIONS: dict[str, Aggregation] = {"mean": statistics.fmean}


@dataclass(frozen=True)
class Metric:
    """What the app knows about one metric name."""

    name: str
    label: str
    higher_is_better: bool
    kind: ValueKind = "fraction"
    scorer: Scorer | None = None  # None: a logged metric (loss, runtime, …), read from the run
    aggregation: str = "mean"
    default: bool = False  # computed for every eval-set row and offered first by the Comparison page

    @property
    def mode(self) -> Mode:
        """Which extreme is best: the Timeline's best-checkpoint choice."""
        return "max" if self.higher_is_better else "min"

    def score(self, output: str, reference: str) -> float:
        if self.scorer is None:
            raise TypeError(f"{self.name!r} is read from training logs, it cannot score an answer")
        return float(self.scorer(output, reference))

    def aggregate(self, values: Sequence[float]) -> float:
        return AGGREGATIONS[self.aggregation](values)

    def format(self, value: float | None) -> str:
        return fmt_value(value, self.kind)

    @property
    def plotly_format(self) -> str:
        """d3-format for hover/text templates, matching :meth:`format`."""
        return plotly_format(self.kind)


_REGISTRY: dict[str, Metric] = {}


def register_metric(name: str, *, label: str, higher_is_better: bool, kind: ValueKind = "fraction",
                    aggregation: str = "mean", default: bool = False) -> Callable[[Scorer], Scorer]:
    """Decorator: register an answer metric ``fn(output, reference) -> float``."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose from {', '.join(AGGREGATIONS)}")

    def decorate(fn: Scorer) -> Scorer:
        _add(Metric(name, label, higher_is_better, kind, fn, aggregation, default))
        return fn

    return decorate


def register_logged_metric(name: str, *, label: str, higher_is_better: bool, kind: ValueKind = "number") -> None:
    """Register a metric that training logs carry (nothing to score, but ranked and formatted)."""
    _add(Metric(name, label, higher_is_better, kind))


def _add(metric: Metric) -> None:
    if metric.name in _REGISTRY:
        raise ValueError(f"metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric


# ---------------------------------------------------------------------------------------------
# Answer normalisation and the answer metrics

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Canonical form used by every answer metric."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    # Unicode-aware punctuation removal: drop every character in a P* (punctuation) or S* (symbol) category.
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


@register_metric("exact_match", label="Exact match", higher_is_better=True, default=True)
def exact_match(output: str, reference: str) -> float:
    return float(normalize_answer(output) == normalize_answer(reference))


@register_metric("contains", label="Contains", higher_is_better=True, default=True)
def contains(output: str, reference: str) -> float:
    """1.0 when the normalised reference appears as a whole-word run inside the normalised output."""
    ref = normalize_answer(reference).split()
    out = normalize_answer(output).split()
    if not ref:
        return float(not out)
    n = len(ref)
    return float(any(out[i:i + n] == ref for i in range(len(out) - n + 1)))


@register_metric("token_f1", label="Token F1", higher_is_better=True, default=True)
def token_f1(output: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of normalised words)."""
    out = normalize_answer(output).split()
    ref = normalize_answer(reference).split()
    if not out or not ref:
        return float(out == ref)
    common = sum((Counter(out) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@register_metric("first_word_match", label="First-word match", higher_is_better=True)
def first_word_match(output: str, reference: str) -> float:
    """Normalised first word of the output equals that of the reference.

    For checks that look at one generated token only (the Attention page's pointing score):
    exact match on the words that token can stand for.
    """
    out, ref = normalize_answer(output).split()[:1], normalize_answer(reference).split()[:1]
    return float(bool(ref) and out == ref)


# Metrics that Trainer / pointing reports log: ranked and formatted, never scored here.
register_logged_metric("loss", label="Loss", higher_is_better=False, kind="loss")
register_logged_metric("perplexity", label="Perplexity", higher_is_better=False)
register_logged_metric("runtime", label="Runtime", higher_is_better=False, kind="seconds")
register_logged_metric("samples_per_second", label="Samples / s", higher_is_better=True, kind="rate")
register_logged_metric("steps_per_second", label="Steps / s", higher_is_better=True, kind="rate")
register_logged_metric("accuracy", label="Accuracy", higher_is_better=True, kind="fraction")
register_logged_metric("pointing", label="Pointing", higher_is_better=True, kind="fraction")
register_logged_metric("mass_in_box", label="Attention mass in box", higher_is_better=True, kind="fraction")
register_logged_metric("chance", label="Chance rate", higher_is_better=False, kind="fraction")


# ---------------------------------------------------------------------------------------------
# Lookup

_SPLITS = frozenset({"eval", "train", "test", "val", "validation"})
# Whole words of an unregistered name that say which way is better / that values are fractions.
_LOWER_WORDS = frozenset({"loss", "perplexity", "ppl", "error", "err", "wer", "cer", "mse", "mae", "rmse",
                          "runtime", "latency", "nll"})
_FRACTION_WORDS = frozenset({"accuracy", "acc", "f1", "precision", "recall", "match", "contains", "pointing"})


def default_metrics() -> tuple[str, ...]:
    """The answer metrics every eval-set row gets (Comparison, Inference batch, saved scores)."""
    return tuple(m.name for m in _REGISTRY.values() if m.scorer is not None and m.default)


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; ``KeyError`` names the choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; choose from {', '.join(_REGISTRY)}") from None


def registered() -> Mapping[str, Metric]:
    return dict(_REGISTRY)


def answer_metrics() -> list[Metric]:
    """Every metric that can score an answer, default ones first."""
    scorers = [m for m in _REGISTRY.values() if m.scorer is not None]
    return sorted(scorers, key=lambda m: not m.default)


def describe(name: str) -> Metric:
    """What to assume about any metric name a log may carry.

    ``eval_exact_match`` is ``exact_match``, ``eval_accuracy_colour`` is ``accuracy`` (a per-task
    suffix); otherwise the name's words decide (``eval_answer_loss`` is lower-better — a word, not
    a substring: ``answer`` does not contain the word ``wer``).
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    words = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]  # eval_loss, eval/loss, train.loss
    if len(words) > 1 and words[0] in _SPLITS:
        words = words[1:]
    for end in range(len(words), 0, -1):  # longest registered head: accuracy_colour → accuracy
        head = "_".join(words[:end])
        if head in _REGISTRY:
            return replace(_REGISTRY[head], name=name, label=name, scorer=None, default=False)
    lower = any(w in _LOWER_WORDS for w in words)
    fraction = not lower and any(w in _FRACTION_WORDS for w in words)
    return Metric(name, name, higher_is_better=not lower, kind="fraction" if fraction else "number")


def best_mode(name: str) -> Mode:
    """``"min"`` or ``"max"``: which extreme of ``name`` is the best checkpoint."""
    return describe(name).mode


def display_kind(name: str, values: object = None) -> ValueKind:
    """The format ``name``'s values take on screen: its kind, except that a "fraction" whose values
    leave [0, 1] (a run logging accuracy as 0–100) is shown as plain numbers, never as 9000%."""
    kind = describe(name).kind
    if kind == "fraction" and values is not None:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
        finite = array[np.isfinite(array)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            return "number"
    return kind


def format_metric(name: str, value: float | None) -> str:
    """One value of metric ``name`` as every page shows it (``eval_accuracy`` 0.8125 → ``81.3%``)."""
    return fmt_value(value, display_kind(name, value))


# ---------------------------------------------------------------------------------------------
# Scoring rows


def score(output: str, reference: str, metrics: Iterable[str] | None = None) -> dict[str, float]:
    """Scores of one answer (default: :func:`default_metrics`); an unknown name raises ``KeyError``."""
    names = default_metrics() if metrics is None else metrics
    return {name: get_metric(name).score(output, reference) for name in names}


def aggregate_scores(rows: Iterable[Mapping[str, float]], metrics: Iterable[str] | None = None) -> dict[str, float]:
    """Per-metric aggregate over rows; metrics missing from every row are left out (never NaN)."""
    values: dict[str, list[float]] = {m: [] for m in (default_metrics() if metrics is None else metrics)}
    for row in rows:
        for m, bucket in values.items():
            if m in row:
                bucket.append(float(row[m]))
    return {m: describe(m).aggregate(v) for m, v in values.items() if v}
