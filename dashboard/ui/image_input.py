"""Image picker widget shared by the Inference, Comparison and Attention pages.

The user either uploads a file or clicks an example of the run's eval set (the demo run ships
``<run>/eval/demo.jsonl``). Every problem (bad file, bad eval row, missing image) is shown
here as a message and the function returns None, so callers only handle the happy path.
All widget keys derive from ``key`` so several pickers can live on one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image
from streamlit.runtime.uploaded_file_manager import UploadedFile

from dashboard.evalset import EvalExample
from dashboard.formatting import markdown_safe
from dashboard.images import DecodedImages, ImageError, image_digest, image_size, load_image
from dashboard.public import LIMITS, public_mode, upload_limit_mb
from dashboard.thumbnails import thumbnail_png
from dashboard.ui import url_state
from dashboard.ui.evalset_input import choose_run_eval_set, run_eval_sets
from dashboard.ui.gate import max_examples
from dashboard.ui.resources import get_settings
from dashboard.ui.upload_limit import limit_note

GALLERY_PAGE = 12
GALLERY_COLUMNS = 4  # in the Inference page's left column: 6 cut the ids to "0‥" at 1400 px
SOURCE_UPLOAD = "Upload"
SOURCE_EXAMPLE = "Eval-set example"


@dataclass
class PickedImage:
    """A decoded RGB image plus where it came from (``example`` for eval-set picks)."""

    image: Image.Image
    name: str
    digest: str
    example: EvalExample | None = None
    source: Path | None = None
    """The eval-set file an example came from (exports record its content hash)."""


def load_example_image(example: EvalExample, source: Path | None = None) -> PickedImage:
    """Decode an eval example's image (raises ImageError with a clear message)."""
    image = load_image(example.image_path, max_pixels=get_settings().max_image_pixels)
    return PickedImage(image=image, name=f"{example.id} ({example.image_path.name})", digest=image_digest(image),
                       example=example, source=source)


@st.cache_resource(show_spinner=False)
def decoded_images() -> DecodedImages:
    """The process's decoded uploads, bounded: locally twice one visitor's upload budget; in public mode
    ``LIMITS.decoded_cache_pixels`` (each entry at most ``LIMITS.max_image_side`` on a side, so still ~30)."""
    return DecodedImages(LIMITS.decoded_cache_pixels if public_mode() else 2 * LIMITS.max_upload_pixels)


def picked_from_bytes(data: bytes, name: str) -> PickedImage:
    """Decoded once per content (reruns and other tabs reuse it); raises ImageError."""
    keep_side = LIMITS.max_image_side if public_mode() else None  # locally the full resolution
    image, digest = decoded_images().get(data, name, get_settings().max_image_pixels, keep_side)
    return PickedImage(image=image, name=name, digest=digest)


_REDUCED_NOTE = (f"; this public demo uses images larger than {LIMITS.max_image_side} px on a side reduced to "
                 f"{LIMITS.max_image_side} px")


def upload_pixel_budget() -> int | None:
    """Decoded pixels one batch of uploads may take: public mode's per-visitor budget; locally none."""
    return LIMITS.max_upload_pixels if public_mode() else None


def within_budget(files: list[tuple[str, bytes]], budget: int | None) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The files that fit ``budget`` decoded pixels in order (sizes read from headers), and why others don't."""
    kept: list[tuple[str, bytes]] = []
    refused: list[str] = []
    used = 0
    for name, data in files:
        if budget is None:
            kept.append((name, data))
            continue
        try:
            width, height = image_size(data, name)
        except ImageError as exc:
            refused.append(f"{name}: {exc}")
            continue
        if used + width * height > budget:
            refused.append(f"{name}: {width}×{height} would take this batch past the public demo's budget of "
                           f"{budget / 1e6:.0f} MP decoded pixels per visitor; use fewer or smaller images")
            continue
        used += width * height
        kept.append((name, data))
    return kept, refused


def _upload(key: str) -> PickedImage | None:
    uploaded = st.file_uploader("Image", key=f"{key}.upload", max_upload_size=upload_limit_mb(),
                                help="PNG, JPEG, WebP, GIF, BMP, TIFF… (converted to RGB, EXIF rotation applied)"
                                     + _REDUCED_NOTE * public_mode() + limit_note())
    if uploaded is None:
        return None
    try:
        return picked_from_bytes(uploaded.getvalue(), uploaded.name)
    except ImageError as exc:
        st.error(markdown_safe(f"Cannot use this file ({uploaded.name}): {exc}"))
        return None


def _gallery(key: str, sets: list[Path], url_param: str | None = None) -> PickedImage | None:
    eval_set = choose_run_eval_set(f"{key}.evalset", sets)
    if eval_set is None:
        return None
    chosen_key = f"{key}.example_id"
    if url_param:  # ?ex=<id>: the example a link or a reload names
        from_url = url_state.arrival_value(url_param, url_state.decode_choice(list(eval_set.by_id())), "example")
        if from_url is not None:
            st.session_state[chosen_key] = from_url
    examples = eval_set.examples
    tasks = sorted({ex.task for ex in examples if ex.task})
    if len(tasks) > 1:
        task = st.selectbox("Task", ["all", *tasks], key=f"{key}.task")
        if task != "all":
            examples = [ex for ex in examples if ex.task == task]
    chosen = eval_set.by_id().get(st.session_state.get(chosen_key, ""))
    if url_param:
        url_state.publish(url_param, chosen.id if chosen is not None else None)
    if chosen is not None:  # collapsed: only the chosen example, so the prompt and Generate stay in view
        return _chosen_example(key, chosen, eval_set.path)
    pages = max(1, -(-len(examples) // GALLERY_PAGE))
    page = _gallery_page(f"{key}.page", pages)
    shown = examples[(page - 1) * GALLERY_PAGE:page * GALLERY_PAGE]
    columns = st.columns(GALLERY_COLUMNS)
    max_pixels = get_settings().max_image_pixels
    for index, example in enumerate(shown):
        with columns[index % GALLERY_COLUMNS]:
            thumb = thumbnail_png(example.image_path, max_pixels)
            if isinstance(thumb, bytes):
                st.image(thumb, width="stretch")
            else:
                st.caption(f"⚠ {markdown_safe(thumb)}")
            # A callback, so the click's own run already shows the collapsed gallery.
            st.button(markdown_safe(example.id), key=f"{key}.pick.{example.id}", help=markdown_safe(example.prompt),
                      width="stretch", wrap=True,
                      on_click=st.session_state.__setitem__, args=(chosen_key, example.id))
    st.caption("Click an example to use its image (and its prompt as a suggestion).")
    return None


def clamp_page(requested: object, pages: int) -> int:
    """A gallery page number within 1..pages (anything unusable → 1)."""
    try:
        page = int(requested)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return min(max(page, 1), pages)


def _gallery_page(widget_key: str, pages: int) -> int:
    """The page widget; a stale page past the end (e.g. after a task filter) is clamped and said so."""
    if pages <= 1:
        return 1
    if widget_key in st.session_state:
        requested = st.session_state[widget_key]
        page = clamp_page(requested, pages)
        if page != requested:
            st.session_state[widget_key] = page
            st.caption(f"Page {requested} does not exist; showing page {page} of {pages}.")
    return int(st.number_input(f"Gallery page (of {pages})", 1, pages, 1, key=widget_key))


def _chosen_example(key: str, chosen: EvalExample, source: Path | None) -> PickedImage | None:
    try:
        picked = load_example_image(chosen, source)
    except ImageError as exc:
        st.error(markdown_safe(f"Example {chosen.id}: {exc}"))
        picked = None
    st.button("Choose another example", key=f"{key}.change", on_click=st.session_state.pop,
              args=(f"{key}.example_id", None))
    if picked is not None:
        st.caption(f"Example **{markdown_safe(chosen.id)}** · prompt: _{markdown_safe(chosen.prompt)}_ · "
                   f"reference: **{markdown_safe(chosen.answer)}**")
    return picked


def pick_image(key: str, run_dir: Path | None, url_param: str | None = None) -> PickedImage | None:
    """Upload or eval-set gallery → :class:`PickedImage`; shows its own errors and returns None then.

    ``url_param``: the chosen example's id is mirrored into that query parameter (and read back on arrival).
    """
    sets = run_eval_sets(run_dir)
    source = SOURCE_UPLOAD
    if sets:
        source = st.segmented_control("Image source", [SOURCE_EXAMPLE, SOURCE_UPLOAD], default=SOURCE_EXAMPLE,
                                      key=f"{key}.source") or SOURCE_EXAMPLE
    if url_param and source != SOURCE_EXAMPLE:
        url_state.publish(url_param, None)
    picked = _gallery(key, sets, url_param) if source == SOURCE_EXAMPLE else _upload(key)
    if picked is not None:
        st.image(picked.image, caption=f"{markdown_safe(picked.name)} · {picked.image.width}×{picked.image.height}",
                 width=256)
    return picked


def pick_images_batch(key: str, run_dir: Path | None) -> list[PickedImage]:
    """Several uploads, or the first N eval-set examples (for batch mode); bad files are listed, not fatal."""
    sets = run_eval_sets(run_dir)
    options = [SOURCE_EXAMPLE, SOURCE_UPLOAD] if sets else [SOURCE_UPLOAD]
    source = st.segmented_control("Images", options, default=options[0], key=f"{key}.bsource") or options[0]
    picked: list[PickedImage] = []
    errors: list[str] = []
    if source == SOURCE_EXAMPLE:
        eval_set = choose_run_eval_set(f"{key}.bevalset", sets)
        if eval_set is None:
            return []
        most = max_examples(1, len(eval_set.examples))  # public mode: what one job may generate
        count = st.number_input("Number of examples", 1, most, min(8, most), key=f"{key}.bcount")
        for example in eval_set.examples[:int(count)]:
            try:
                picked.append(load_example_image(example, eval_set.path))
            except ImageError as exc:
                errors.append(f"{example.id}: {exc}")
    else:
        uploads = st.file_uploader("Images", accept_multiple_files=True, key=f"{key}.bupload",
                                   max_upload_size=upload_limit_mb(),
                                   help=(_REDUCED_NOTE + limit_note()).strip(" ;") if public_mode() else None) or []
        picked, errors = _decoded_uploads(uploads)
    if errors:
        st.warning("Skipped files:\n\n" + "\n".join(f"- {markdown_safe(e)}" for e in errors))
    return picked


def pick_more_images(key: str) -> list[PickedImage]:
    """Optional further images for the same prompt (several-image families); bad files are listed, not fatal."""
    uploads = st.file_uploader("More images in the same prompt (optional, in order after the first)",
                               accept_multiple_files=True, key=f"{key}.more",
                               max_upload_size=upload_limit_mb(),
                               help="For families whose adapter maps several images per prompt (Qwen2-VL, "
                                    "Qwen2.5-VL, Qwen3-VL, Gemma 4, LLaVA-NeXT, LLaVA-OneVision); others say why "
                                    "not.") or []
    picked, errors = _decoded_uploads(uploads)
    if errors:
        st.warning("Skipped files:\n\n" + "\n".join(f"- {markdown_safe(e)}" for e in errors))
    return picked


def _decoded_uploads(uploads: list[UploadedFile]) -> tuple[list[PickedImage], list[str]]:
    """Uploaded files within this visitor's pixel budget, decoded; one line per file that was not."""
    files, errors = within_budget([(u.name, u.getvalue()) for u in uploads], upload_pixel_budget())
    picked: list[PickedImage] = []
    for name, data in files:
        try:
            picked.append(picked_from_bytes(data, name))
        except ImageError as exc:
            errors.append(f"{name}: {exc}")
    return picked, errors
