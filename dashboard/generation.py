"""Generation on a pooled model: single, batched and streamed, with timings.

Why one module: the Inference, Comparison and Attention pages must build inputs the same way
(chat template applied, optional assistant prefill) and count tokens/timings the same way, so
their numbers are comparable. Every call holds ``loaded.lock`` while the model runs; callers
keep the pool pin (``with pool.acquire(...)``) around the whole call/stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
from transformers.feature_extraction_utils import BatchFeature

from dashboard.chat_template import ChatTemplateError, render_chat_template
from dashboard.models.loading import LoadedModel
from dashboard.models.vision_chunks import vision_in_chunks

CHARS_PER_TOKEN_LIMIT = 16
"""A prompt longer than this many characters per token of context is refused before tokenizing."""


class GenerationInputError(ValueError):
    """The prompt/image/settings cannot be used; the message says why."""


class GenerationOOMError(RuntimeError):
    """The device ran out of memory during generation (the pool can free memory and retry)."""


class GenerationCancelled(BaseException):
    """``should_stop()`` turned True (the browser session went away): the work was abandoned.

    What was generated so far is cut short, so it must never be shown, cached or scored as an
    answer. A ``BaseException`` (like ``asyncio.CancelledError``) so the broad ``except Exception``
    that keeps one bad example or checkpoint from sinking a sweep cannot turn a cancel into a
    scored failure; the pages catch it and simply stop.
    """


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings; ``key()`` is stable so results can be cached per settings."""

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_beams: int = 1
    seed: int = 0

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def validate(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise GenerationInputError(f"max new tokens must be between 1 and 4096, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise GenerationInputError(f"beams must be ≥ 1, got {self.num_beams}")
        if self.do_sample and self.temperature <= 0:
            raise GenerationInputError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if self.do_sample and not 0 < self.top_p <= 1:
            raise GenerationInputError(f"top-p must be in (0, 1], got {self.top_p}")

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                                  "num_beams": self.num_beams}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


DEFAULT_GENERATION = GenerationSettings()
"""The one generation default of every page and of ``python -m dashboard eval``: equal defaults give
equal result identities, so the page and the CLI reuse each other's saved answers."""


@dataclass
class GenerationResult:
    """Output text (the continuation after any prefill) and where the time went.

    The phases a user waits through, each measured on its own:

    * ``preprocess_s`` — the processor (image resize/normalise, chat template, tokenising);
    * ``ttft_s`` — from the start of ``generate`` to the first new token (the prefill);
    * ``decode_s`` — from the first new token to the last.

    ``latency_s`` is end to end (preprocessing included). ``tokens_per_s`` is the decode rate:
    the tokens produced after the first one ÷ ``decode_s`` — dividing by a total that includes
    the prefill would make short answers look slow. ``None`` where it cannot be measured
    (a one-token answer; beam search, which reports no first-token time).

    Batched rows share their chunk's timings; ``batch_size`` says how many rows did, and
    :attr:`per_example_s` is the chunk's latency divided among them.
    ``prompt_tokens`` includes the expanded image tokens.
    """

    text: str
    prompt_tokens: int
    output_tokens: int
    latency_s: float
    ttft_s: float | None
    tokens_per_s: float | None
    preprocess_s: float = 0.0
    decode_s: float | None = None
    batch_size: int = 1

    @property
    def per_example_s(self) -> float:
        return self.latency_s / max(1, self.batch_size)


def _phase_timings(preprocess_s: float, generate_began: float, first_token_at: float | None, ended: float,
                   output_tokens: int) -> dict[str, Any]:
    """``latency_s``/``ttft_s``/``decode_s``/``tokens_per_s`` from the clock readings of one generate call."""
    ttft = None if first_token_at is None else first_token_at - generate_began
    decode = None if first_token_at is None else max(0.0, ended - first_token_at)
    rate = (output_tokens - 1) / decode if decode and output_tokens > 1 else None
    return {"latency_s": preprocess_s + (ended - generate_began), "ttft_s": ttft, "decode_s": decode,
            "tokens_per_s": rate, "preprocess_s": preprocess_s}


# ---------------------------------------------------------------------------- inputs
def format_prompt(loaded: LoadedModel, prompt: str, prefill: str = "", images: int = 1) -> str:
    """The model's chat template applied to one user turn with ``images`` images, plus the assistant prefill."""
    processor = loaded.processor
    template = getattr(processor, "chat_template", None)
    if isinstance(template, str) and template:
        content = [*([{"type": "image"}] * images), {"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        tokenizer = getattr(processor, "tokenizer", processor)
        special = {k: v for k, v in (getattr(tokenizer, "special_tokens_map", None) or {}).items()
                   if isinstance(v, str)}
        try:
            text = render_chat_template(template, {**special, "messages": messages, "add_generation_prompt": True})
        except ChatTemplateError as exc:
            raise GenerationInputError(f"{loaded.path.name}: {exc}") from exc
    else:  # no template: the processor's image token followed by the raw prompt
        image_token = getattr(processor, "image_token", None) or "<image>"
        text = f"{image_token * images}\n{prompt}"
    if prefill:
        text = text + prefill if text[-1:].isspace() else f"{text} {prefill}"
    return text


def build_inputs(loaded: LoadedModel, image: Image.Image | Sequence[Image.Image], prompt: str | Sequence[str],
                 prefill: str | Sequence[str] = "") -> BatchFeature:
    """Processor outputs (chat template applied) on ``loaded.device``; lists give a left-padded batch."""
    images = [image] if isinstance(image, Image.Image) else list(image)
    prompts = [prompt] * len(images) if isinstance(prompt, str) else list(prompt)
    prefills = [prefill] * len(images) if isinstance(prefill, str) else list(prefill)
    if not images or any(im is None for im in images):
        raise GenerationInputError("no image given: upload an image or pick an example first")
    if len(prompts) != len(images) or len(prefills) != len(images):
        raise GenerationInputError(f"{len(images)} images but {len(prompts)} prompts / {len(prefills)} prefills")
    if any(not p or not p.strip() for p in prompts):
        raise GenerationInputError("the prompt is empty: type a question or instruction")
    context = model_context(loaded)
    if context and any(len(p) > CHARS_PER_TOKEN_LIMIT * context for p in prompts):
        raise GenerationInputError(f"the prompt is {max(map(len, prompts)):,} characters; {loaded.path.name} reads "
                                   f"at most {context:,} tokens: shorten it")
    texts = [format_prompt(loaded, p.strip(), f.strip()) for p, f in zip(prompts, prefills, strict=True)]
    kwargs: dict[str, Any] = {"padding": True} if len(texts) > 1 else {}
    # A batch gives each prompt its own list of images: processors that count images per prompt (Idefics3/SmolVLM,
    # Gemma 3/4) refuse a flat list of three images for three prompts; the others flatten it the same either way.
    rgb = [im.convert("RGB") for im in images]
    try:
        inputs = loaded.processor(images=[[im] for im in rgb] if len(rgb) > 1 else rgb, text=texts,
                                  return_tensors="pt", **kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        raise GenerationInputError(f"the processor could not prepare the inputs: {exc}") from exc
    return _without_labels(inputs).to(loaded.device, dtype=loaded.dtype)


def build_prompt_inputs(loaded: LoadedModel, images: Sequence[Image.Image], prompt: str,
                        prefill: str = "") -> BatchFeature:
    """Processor outputs of *one* prompt holding every image of ``images`` (in order) on ``loaded.device``."""
    if not images or any(im is None for im in images):
        raise GenerationInputError("no image given: upload an image or pick an example first")
    if not prompt or not prompt.strip():
        raise GenerationInputError("the prompt is empty: type a question or instruction")
    text = format_prompt(loaded, prompt.strip(), prefill.strip(), images=len(images))
    try:
        inputs = loaded.processor(images=[im.convert("RGB") for im in images], text=[text], return_tensors="pt")
    except (ValueError, TypeError, KeyError) as exc:
        raise GenerationInputError(f"the processor could not prepare the inputs: {exc}") from exc
    return _without_labels(inputs).to(loaded.device, dtype=loaded.dtype)


# ---------------------------------------------------------------------------- helpers
def _without_labels(inputs: BatchFeature) -> BatchFeature:
    """Drop the ``labels`` some processors add for training (PaliGemma's, even without a suffix): nothing here
    trains, and a forward given labels computes a loss — which fails outright when only the last position's logits
    are kept (faithfulness, eval scoring)."""
    inputs.pop("labels", None)
    return inputs


def model_context(loaded: LoadedModel) -> int | None:
    """Positions the language model can attend over (``max_position_embeddings``), if it says."""
    config = getattr(loaded.model, "config", None)
    for part in (getattr(config, "text_config", None), config):
        value = getattr(part, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(loaded: LoadedModel, prompt_tokens: int, settings: GenerationSettings) -> None:
    """Refuse before generating when prompt + new tokens cannot fit the model's context."""
    context = model_context(loaded)
    if context and prompt_tokens + settings.max_new_tokens > context:
        raise GenerationInputError(
            f"the prompt is {prompt_tokens:,} tokens (image included) and {settings.max_new_tokens} new tokens are "
            f"asked for, but {loaded.path.name} has a context of {context:,} tokens: shorten the prompt")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _oom_error(loaded: LoadedModel, exc: BaseException) -> GenerationOOMError:
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()
    return GenerationOOMError(
        f"out of memory while generating with {loaded.path.name} on {loaded.device}: reduce max new tokens, beams "
        f"or batch size, or evict other models from the pool ({type(exc).__name__}: {str(exc)[:200]})")


def _count_new_tokens(new_ids: torch.Tensor, loaded: LoadedModel) -> int:
    """Generated tokens up to and including the first EOS (padding after it is not output)."""
    config = loaded.model.generation_config
    eos = config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    ids = new_ids.tolist()
    for index, token in enumerate(ids):
        if token in eos_ids:
            return index + 1
    pad = config.pad_token_id
    while ids and pad is not None and ids[-1] == pad:
        ids.pop()
    return len(ids)


def _decode(loaded: LoadedModel, new_ids: torch.Tensor) -> str:
    return loaded.processor.decode(new_ids, skip_special_tokens=True).strip()


class CancelCheck(StoppingCriteria):
    """Stops ``model.generate`` at the next token once ``should_stop()`` turns True, or ``stop`` is set.

    The one cancel mechanism for every generation of every page — plain, batched, streamed here,
    and attention capture (:func:`dashboard.attention.capture.capture_generate`): Streamlit never
    interrupts a ``generate`` call, so a closed tab is only noticed by polling between tokens.
    ``cancelled`` tells a cut-short output (discard it) from one that finished.
    """

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.stop = threading.Event()
        self.should_stop = should_stop
        """Polled every token: e.g. "is the browser session that asked for this still there?"."""
        self.cancelled = False

    def _stopped(self) -> bool:
        if not self.stop.is_set() and self.should_stop is not None and self.should_stop():
            self.cancelled = True
            self.stop.set()
        return self.stop.is_set()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._stopped(), dtype=torch.bool, device=input_ids.device)

    def raise_if_cancelled(self, what: str) -> None:
        """After ``generate``: a cancelled (cut-short) output is not a result."""
        if self.cancelled:
            raise GenerationCancelled(f"{what}: stopped, the session that asked for it is gone")


def check_cancelled(should_stop: Callable[[], bool] | None, what: str) -> None:
    """Before starting a unit of work: raise :class:`GenerationCancelled` if nobody waits for it any more."""
    if should_stop is not None and should_stop():
        raise GenerationCancelled(f"{what}: not started, the session that asked for it is gone")


class _FirstTokenClock(CancelCheck):
    """A :class:`CancelCheck` that also records when the first new token exists."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        super().__init__(should_stop)
        self.first_token_at: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        return super().__call__(input_ids, scores, **kwargs)


def _run_generate(loaded: LoadedModel, inputs: BatchFeature, settings: GenerationSettings,
                  clock: _FirstTokenClock, streamer: Any = None) -> torch.Tensor:
    with loaded.lock, torch.inference_mode(), vision_in_chunks(loaded.model):
        torch.manual_seed(settings.seed)
        try:
            return loaded.model.generate(**inputs, **settings.generate_kwargs(), streamer=streamer,
                                         stopping_criteria=StoppingCriteriaList([clock]))
        except Exception as exc:
            if _is_oom(exc):
                raise _oom_error(loaded, exc) from exc
            raise


# ---------------------------------------------------------------------------- API
def generate(loaded: LoadedModel, image: Image.Image, prompt: str, settings: GenerationSettings = GenerationSettings(),
             prefill: str = "", should_stop: Callable[[], bool] | None = None) -> GenerationResult:
    """One image + prompt → one answer, with preprocessing / prefill / decode timings.

    Raises :class:`GenerationCancelled` when ``should_stop()`` turns True before the answer is complete.
    """
    return generate_batch(loaded, [image], [prompt], settings, prefills=[prefill], batch_size=1,
                          should_stop=should_stop)[0]


def generate_batch(loaded: LoadedModel, images: Sequence[Image.Image], prompts: Sequence[str] | str,
                   settings: GenerationSettings = GenerationSettings(), *, prefills: Sequence[str] | str = "",
                   batch_size: int = 8, on_progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> list[GenerationResult]:
    """Many images × prompts, run ``batch_size`` at a time (left-padded).

    Timings of a row are those of its chunk (shared by the chunk's ``batch_size`` rows; see
    :attr:`GenerationResult.per_example_s`); ``on_progress(done, total)`` is called after each chunk;
    ``should_stop()`` is polled every token and between chunks: once it is True the work stops
    (a closed browser tab must not hold a core) and :class:`GenerationCancelled` is raised, since
    cut-short answers are not results.
    """
    settings.validate()
    images = list(images)
    prompts = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
    prefills = [prefills] * len(images) if isinstance(prefills, str) else list(prefills)
    if len(prompts) != len(images) or len(prefills) != len(images):
        raise GenerationInputError(f"{len(images)} images but {len(prompts)} prompts / {len(prefills)} prefills")
    results: list[GenerationResult] = []
    step = max(1, int(batch_size))
    for start in range(0, len(images), step):
        chunk = slice(start, start + step)
        check_cancelled(should_stop, loaded.path.name)
        prepared = time.perf_counter()
        inputs = build_inputs(loaded, images[chunk], prompts[chunk], prefills[chunk])
        check_context(loaded, int(inputs["input_ids"].shape[1]), settings)
        clock = _FirstTokenClock(should_stop)
        began = time.perf_counter()
        sequences = _run_generate(loaded, inputs, settings, clock)
        ended = time.perf_counter()
        clock.raise_if_cancelled(loaded.path.name)
        prompt_len = inputs["input_ids"].shape[1]
        mask = inputs.get("attention_mask")
        for row in range(sequences.shape[0]):
            new_ids = sequences[row, prompt_len:]
            n_out = _count_new_tokens(new_ids, loaded)
            n_prompt = int(mask[row].sum()) if mask is not None else prompt_len
            results.append(GenerationResult(
                text=_decode(loaded, new_ids[:n_out]), prompt_tokens=n_prompt, output_tokens=n_out,
                batch_size=sequences.shape[0],
                **_phase_timings(began - prepared, began, clock.first_token_at, ended, n_out)))
        if on_progress:
            on_progress(len(results), len(images))
    return results


class _TimedStreamer(TextIteratorStreamer):
    """TextIteratorStreamer that can be ended exactly once from outside (after errors)."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._ended = False
        self._end_lock = threading.Lock()

    def end(self) -> None:
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        super().end()


class GenerationStream:
    """Iterate text chunks as they are generated; ``result`` is set once the stream is exhausted.

    Beam search cannot stream in transformers, so with ``num_beams > 1`` the whole answer
    arrives as one chunk and ``ttft_s`` is None. Abandoning the iteration (``close()``)
    stops generation at the next token; when ``should_stop()`` turned True the stream just ends
    and ``result`` stays None (the text shown so far is cut short: not an answer to keep).
    """

    def __init__(self, loaded: LoadedModel, image: Image.Image, prompt: str, settings: GenerationSettings,
                 prefill: str = "", should_stop: Callable[[], bool] | None = None) -> None:
        settings.validate()
        self.loaded = loaded
        self.settings = settings
        prepared = time.perf_counter()
        self.inputs = build_inputs(loaded, image, prompt, prefill)  # input errors raise here, synchronously
        self.preprocess_s = time.perf_counter() - prepared
        check_context(loaded, int(self.inputs["input_ids"].shape[1]), settings)
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self._clock = _FirstTokenClock(should_stop)
        self._sequences: torch.Tensor | None = None
        self._streamer = _TimedStreamer(getattr(loaded.processor, "tokenizer", loaded.processor)) \
            if settings.num_beams == 1 else None
        self._thread: threading.Thread | None = None
        self._began = 0.0

    def _work(self) -> None:
        try:
            self._sequences = _run_generate(self.loaded, self.inputs, self.settings, self._clock, self._streamer)
        except BaseException as exc:  # re-raised in the consuming thread
            self.error = exc
        finally:
            if self._streamer is not None:
                self._streamer.end()

    def __iter__(self) -> Iterator[str]:
        if self._thread is not None:
            raise RuntimeError("a GenerationStream can be iterated only once")
        self._began = time.perf_counter()
        self._thread = threading.Thread(target=self._work, name="vlmlab-generate", daemon=True)
        self._thread.start()
        try:
            if self._streamer is not None:
                yield from self._streamer
            self._thread.join()
            if self.error is not None:
                raise self.error
            if self._clock.cancelled:
                return
            ended = time.perf_counter()
            assert self._sequences is not None
            new_ids = self._sequences[0, self.inputs["input_ids"].shape[1]:]
            n_out = _count_new_tokens(new_ids, self.loaded)
            text = _decode(self.loaded, new_ids[:n_out])
            if self._streamer is None:
                yield text
            first = self._clock.first_token_at if self._streamer is not None else None
            self.result = GenerationResult(
                text=text, prompt_tokens=int(self.inputs["input_ids"].shape[1]), output_tokens=n_out,
                **_phase_timings(self.preprocess_s, self._began, first, ended, n_out))
        finally:
            self._clock.stop.set()  # no-op when finished; stops a generation whose consumer went away

    def close(self) -> None:
        self._clock.stop.set()


def stream(loaded: LoadedModel, image: Image.Image, prompt: str, settings: GenerationSettings = GenerationSettings(),
           prefill: str = "", should_stop: Callable[[], bool] | None = None) -> GenerationStream:
    """Start nothing yet: iterating the returned object runs generation in a thread and yields text."""
    return GenerationStream(loaded, image, prompt, settings, prefill, should_stop)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def result_stats(result: GenerationResult) -> dict[str, Any]:
    """The timing/token columns shown in tables, stored in history and exported.

    For a batched row the phase timings are its chunk's; ``per_example_s`` is its share.
    """
    return {"latency_s": round(result.latency_s, 4), "preprocess_s": round(result.preprocess_s, 4),
            "ttft_s": _rounded(result.ttft_s, 4), "decode_s": _rounded(result.decode_s, 4),
            "tokens_per_s": _rounded(result.tokens_per_s, 2), "batch_size": result.batch_size,
            "per_example_s": round(result.per_example_s, 4), "prompt_tokens": result.prompt_tokens,
            "output_tokens": result.output_tokens}
