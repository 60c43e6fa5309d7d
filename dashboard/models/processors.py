"""Load a checkpoint's processor before its weights, without a video processor where one cannot be built.

Why a module of its own: current transformers saves a video-processor entry for Qwen2-VL,
Qwen2.5-VL and SmolVLM, and building that video processor needs torchvision, which the pinned CPU
torch cannot use. Images never need it, so the processor is rebuilt from its image processor and
tokenizer alone (logged once per processor class). Loading the processor first means a broken
processor is reported before any weights are read.
"""

from __future__ import annotations

import inspect
import logging
from functools import cache
from pathlib import Path
from typing import Any

from transformers.processing_utils import ProcessorMixin

logger = logging.getLogger(__name__)


class ProcessorLoadError(RuntimeError):
    """The processor of a checkpoint cannot be built (the message says why)."""


def _needs_video_processor(cls: Any) -> bool:
    return "video_processor" in inspect.signature(cls.__init__).parameters


class VideoUnavailable:
    """Stands in for the video processor: video settings read as unset, processing a video says why not."""

    def __getattr__(self, name: str) -> None:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ProcessorLoadError("this processor was loaded without its video processor (torchvision is not "
                                 "available); only images are supported")


class _DropsVideoArgument(ProcessorMixin):
    """Sits between a family's processor class and ``ProcessorMixin`` in the image-only variant's MRO.

    Some families (Gemma 4) pass ``video_processor=`` to ``ProcessorMixin.__init__`` by keyword, which
    rejects a keyword that is not one of the (video-free) attributes; positional passing (Qwen2-VL) is
    cut off by the attribute list anyway. Dropping the ``None`` here covers both.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("video_processor", 0) is None:
            kwargs.pop("video_processor")
        super().__init__(*args, **kwargs)


@cache
def without_video_processor(cls: Any) -> Any:
    """A subclass of the processor class ``cls`` whose sub-processors exclude the video processor.

    ``ProcessorMixin`` derives its sub-processors from the ``__init__`` signature, so a signature
    without ``video_processor`` makes ``from_pretrained`` skip it; the family's own ``__init__``
    still runs (with ``video_processor=None``, which the image path never touches).
    """

    original = inspect.signature(cls.__init__)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        named = dict(signature.bind(self, *args, **kwargs).arguments)
        extra = {k: named.pop(k) for k, p in signature.parameters.items() if p.kind is p.VAR_KEYWORD and k in named}
        named.pop("self")
        cls.__init__(self, video_processor=None, **named, **next(iter(extra.values()), {}))
        self.video_processor = VideoUnavailable()

    signature = original.replace(parameters=[p for n, p in original.parameters.items() if n != "video_processor"])
    __init__.__signature__ = signature  # type: ignore[attr-defined]

    def from_args_and_dict(sub: type, args: Any, processor_dict: dict[str, Any], **kwargs: Any) -> Any:
        # The base class keeps only settings named in ``__init__.__code__``; ours takes ``**kwargs``.
        merged = {**processor_dict, **kwargs}
        accepted = [n for n in signature.parameters if n != "self" and n not in sub.get_attributes()]  # type: ignore[attr-defined]
        return sub(*args, **{n: merged[n] for n in accepted if n in merged and n != "kwargs"})

    return type(cls.__name__, (cls, _DropsVideoArgument), {"__init__": __init__, "__module__": cls.__module__,
                                       "from_args_and_dict": classmethod(from_args_and_dict),
                                       "__doc__": f"{cls.__name__} for images only (no video processor)."})


@cache
def _log_once(class_name: str, reason: str) -> None:
    logger.warning("%s: loading without its video processor (%s); images work, videos are not supported",
                   class_name, reason)


def _processor_class(folder: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING, processor_class_from_name
    from transformers.processing_utils import ProcessorMixin

    try:
        config = ProcessorMixin.get_processor_dict(str(folder), local_files_only=True)[0]
        name = config.get("processor_class")
    except Exception:
        logger.debug("no processor_config.json in %s", folder, exc_info=True)
        name = None
    if name:
        return processor_class_from_name(str(name))
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
        return PROCESSOR_MAPPING[type(config)]
    except (KeyError, ValueError, OSError):
        logger.debug("no processor class mapped for %s", folder, exc_info=True)
        return None


def load_processor(folder: str | Path, trust_remote_code: bool = False, shown: str | None = None) -> Any:
    """``AutoProcessor.from_pretrained``; on a video processor that cannot be built, the image-only variant.

    ``shown``: the checkpoint's name for messages (``folder`` is a private staging folder on loads).
    """
    from transformers import AutoProcessor

    folder = Path(folder)
    shown = shown or folder.name
    try:
        return AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True)
    except Exception as exc:
        first = exc
    cls = _processor_class(folder, trust_remote_code)
    if cls is None or not _needs_video_processor(cls):
        raise ProcessorLoadError(f"cannot load the processor of {shown}: {type(first).__name__}: "
                                 f"{first}") from first
    try:
        processor = without_video_processor(cls).from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise ProcessorLoadError(f"cannot load the processor of {shown}: {type(exc).__name__}: {exc} "
                                 f"(first attempt: {type(first).__name__}: {first})") from exc
    reason = next((line.strip() for line in str(first).splitlines() if line.strip()), "")
    _log_once(cls.__name__, f"{type(first).__name__}: {reason[:160]}")
    return processor
