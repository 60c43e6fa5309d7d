"""Issue 13's findings, one test each, on the hostile-run corpus (``walls_corpus.py``)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from dashboard.chat_template import ChatTemplateError, render_chat_template
from dashboard.compare.results import CheckpointScores, load_scores, save_scores
from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set, parse_eval_set
from dashboard.images import ImageError, load_image
from dashboard.metrics import score
from dashboard.models.loading import CheckpointLoadError, inspect_checkpoint
from dashboard.models.pool import ModelPool
from dashboard.runs.checkpoints import checkpoint_step
from dashboard.runs.run import list_runs, load_run
from tests.hostile.walls_corpus import REMOTE_IMAGE, SECRET, build_corpus, environment_secrets


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_llava_dir: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("walls")
    runs = build_corpus(base / "runs", base / "outside", tiny_llava_dir)
    runs["_root"] = base / "runs"
    runs["_outside"] = base / "outside"
    return runs


@pytest.fixture()
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VLMLAB_PLANTED", SECRET)
    return SECRET


def _roots(corpus: dict[str, Path]) -> list[Path]:
    return [corpus["_root"]]


# ------------------------------------------------------------------ secrets and reads outside the root
def test_eval_file_linked_to_proc_environ_never_leaks(corpus, secret_env):
    run = corpus["secret-links"]
    offered = [p.name for p in find_eval_sets(run, _roots(corpus))]
    assert offered == ["good.jsonl"], offered  # environ / passwd / outside links are not offered
    for name in ("environ.csv", "environ.jsonl", "passwd.csv"):
        with pytest.raises(EvalSetError) as info:
            load_eval_set(run / "eval" / name, roots=_roots(corpus))
        assert not any(secret in str(info.value) for secret in [secret_env, *environment_secrets()])
        assert "root:" not in str(info.value)
        assert name in str(info.value)


def test_csv_header_is_never_echoed_whole(corpus, secret_env):
    environ = Path("/proc/self/environ").read_bytes()  # what a link would have fed the parser
    evalset = parse_eval_set(environ, name="x", path=Path("x.csv"), base_dir=corpus["_root"],
                             roots=_roots(corpus), fmt="csv")
    text = " ".join(evalset.problems)
    assert not any(secret in text for secret in environment_secrets()) and len(text) < 400, text


def test_eval_set_symlinked_from_outside_is_refused(corpus):
    run = corpus["secret-links"]
    with pytest.raises(EvalSetError, match="outside the runs root"):
        load_eval_set(run / "eval" / "outside.jsonl", roots=_roots(corpus))
    evalset = load_eval_set(run / "eval" / "good.jsonl", roots=_roots(corpus))
    assert len(evalset.examples) == 1
    assert any("outside the runs root" in p for p in evalset.problems), evalset.problems


def test_state_events_and_checkpoints_linked_out_are_not_read(corpus):
    data = load_run(corpus["linked-out"], _roots(corpus))
    assert [c.name for c in data.checkpoints] == ["checkpoint-1"]
    assert data.state is None and data.metrics.empty  # the outside trainer_state was not read
    joined = " | ".join(data.problems)
    assert "checkpoint-2: links outside the runs root" in joined
    assert joined.count("outside the runs root") >= 3, data.problems


def test_shard_weight_map_with_absolute_paths_outside_is_refused(corpus):
    ckpt = corpus["shard-escape"] / "checkpoint-1"
    data = load_run(corpus["shard-escape"], _roots(corpus))
    assert not data.checkpoints[0].loadable
    assert any("outside the runs root" in p for p in data.problems), data.problems
    with pytest.raises(CheckpointLoadError, match="outside the runs root"):
        inspect_checkpoint(ckpt, roots=_roots(corpus))


def test_adapter_base_outside_the_root_is_refused(corpus):
    pool = ModelPool(10**9, device="cpu", roots=tuple(_roots(corpus)))
    with pytest.raises(CheckpointLoadError, match="outside the runs root"), \
            pool.acquire(corpus["adapter-escape"] / "checkpoint-1"):
        pass
    assert pool.load_count == 0


def test_pool_refuses_checkpoints_linked_outside(corpus):
    pool = ModelPool(10**9, device="cpu", roots=tuple(_roots(corpus)))
    with pytest.raises(CheckpointLoadError, match="outside the runs root"), \
            pool.acquire(corpus["linked-out"] / "checkpoint-2"):
        pass


# ------------------------------------------------------------------ writes
def _scores(n: int, total: int, eval_hash: str) -> CheckpointScores:
    rows = [{"id": str(i), "output": "red", "scores": score("red", "red")} for i in range(n)]
    return CheckpointScores(checkpoint="checkpoint-1", step=1, eval_set="demo", settings={}, settings_key="k",
                            checkpoint_signature="s", rows=rows, total=total, eval_set_hash=eval_hash)


def test_eval_results_symlink_is_never_written_through(corpus, tmp_path):
    run = corpus["results-link"]
    target = corpus["_outside"] / "results-target"
    saved = save_scores(run, _scores(2, 2, "a" * 64), data_dir=tmp_path / "data")
    assert list(target.iterdir()) == []
    assert saved.is_relative_to(tmp_path / "data")
    with pytest.raises(OSError):
        save_scores(run, _scores(2, 2, "a" * 64))  # no data dir: refused rather than followed


def test_results_keyed_by_content_and_partial_never_replaces_complete(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_scores(run, _scores(200, 200, "a" * 64))
    save_scores(run, _scores(1, 1, "b" * 64))  # an uploaded 1-row "demo.jsonl": another key
    save_scores(run, _scores(5, 200, "a" * 64))  # a stopped partial run of the same set
    full = load_scores(run, "demo", "checkpoint-1", eval_set_hash="a" * 64, settings_key="k")
    assert full is not None and full.complete and full.n == 200
    other = load_scores(run, "demo", "checkpoint-1", eval_set_hash="b" * 64, settings_key="k")
    assert other is not None and other.n == 1
    assert load_scores(run, "demo", "checkpoint-1", eval_set_hash="a" * 64, settings_key="other") is None


# ------------------------------------------------------------------ budgets before allocation
def test_wide_and_thin_images_are_refused_before_decoding(corpus):
    folder = corpus["markdown-and-images"] / "eval"
    for name in ("wide.png", "strip.png"):
        with pytest.raises(ImageError, match=r"longest side|aspect ratio"):
            load_image(folder / name)


def test_config_with_20000_layers_is_refused_before_building(corpus):
    ckpt = corpus["huge-config"] / "checkpoint-1"
    started = time.perf_counter()
    with pytest.raises(CheckpointLoadError, match="num_hidden_layers = 20,000 is not plausible"):
        inspect_checkpoint(ckpt, roots=_roots(corpus))
    assert time.perf_counter() - started < 5


def test_config_far_bigger_than_its_weights_is_refused(corpus):
    with pytest.raises(CheckpointLoadError, match=r"config\.json describes a model of about"):
        inspect_checkpoint(corpus["many-layers"] / "checkpoint-1", roots=_roots(corpus))


def test_estimate_from_config_checks_the_budget(corpus, tiny_llava_dir):
    plan = inspect_checkpoint(corpus["secret-links"] / "checkpoint-1", roots=_roots(corpus))
    assert plan.estimated_bytes >= 700_000  # parameter bytes of the tiny model (fp32)
    pool = ModelPool(plan.estimated_bytes // 2, device="cpu", roots=tuple(_roots(corpus)))
    with pytest.raises(CheckpointLoadError, match="budget"), pool.acquire(plan.path):
        pass
    assert pool.load_count == 0


def test_processor_sizes_are_sanity_checked(corpus):
    with pytest.raises(CheckpointLoadError, match=r"30,000 px|30000 px"):
        inspect_checkpoint(corpus["processor-30000"] / "checkpoint-1", roots=_roots(corpus))


@pytest.mark.parametrize("template", [
    "{% set s = 'x' * 20000000000 %}{{ s }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{{ 'x'|center(10000000000) }}",
    "{% for m in messages %}{{ m.content[0].type }}",
])
def test_chat_templates_are_bounded_and_errors_are_messages(template):
    started = time.perf_counter()
    with pytest.raises(ChatTemplateError):
        render_chat_template(template, {"messages": [{"role": "user", "content": [{"type": "image"}]}]})
    assert time.perf_counter() - started < 5


def test_runaway_template_thread_is_abandoned():
    template = "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"
    before = threading.active_count()
    with pytest.raises(ChatTemplateError, match="longer than"):
        render_chat_template(template, {"s": "x" * 100_000}, timeout_s=0.5)
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before, "the render thread kept running"


def test_demo_template_renders_like_transformers(tiny_llava_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    ours = render_chat_template(processor.chat_template, {**processor.tokenizer.special_tokens_map,
                                                         "messages": messages, "add_generation_prompt": True})
    assert ours == processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_hostile_templates_on_disk_are_shown_as_errors(corpus):
    from dashboard.generation import GenerationInputError, generate
    from dashboard.images import load_image as load

    image = load(corpus["secret-links"] / "pic.png")
    pool = ModelPool(10**9, device="cpu", roots=tuple(_roots(corpus)))
    for name in ("template-multiply", "template-loops", "template-sandbox"):
        with pool.acquire(corpus[name] / "checkpoint-1") as loaded, \
                pytest.raises(GenerationInputError, match="chat template"):
            generate(loaded, image, "hi")


def test_prompt_longer_than_the_context_is_refused_before_generating(corpus):
    from dashboard.generation import GenerationInputError, generate
    from dashboard.images import load_image as load

    image = load(corpus["secret-links"] / "pic.png")
    pool = ModelPool(10**9, device="cpu", roots=tuple(_roots(corpus)))
    with pool.acquire(corpus["secret-links"] / "checkpoint-1") as loaded:
        calls = []
        original = loaded.model.generate
        loaded.model.generate = lambda *a, **k: calls.append(1) or original(*a, **k)
        started = time.perf_counter()
        with pytest.raises(GenerationInputError, match=r"context|shorten"):
            generate(loaded, image, "red " * 125_000)  # 500 KB
        assert not calls and time.perf_counter() - started < 5


def test_generation_stops_when_the_session_is_gone(corpus):
    from dashboard.generation import GenerationCancelled, GenerationSettings, generate, stream
    from dashboard.images import load_image as load

    image = load(corpus["secret-links"] / "pic.png")
    pool = ModelPool(10**9, device="cpu", roots=tuple(_roots(corpus)))
    settings = GenerationSettings(max_new_tokens=40)
    with pool.acquire(corpus["secret-links"] / "checkpoint-1") as loaded:
        loaded.model.generation_config.eos_token_id = None  # would otherwise stop by itself
        full = generate(loaded, image, "hi", settings)
        polls: list[int] = []
        with pytest.raises(GenerationCancelled):  # a cut-short answer is not a result
            generate(loaded, image, "hi", settings, should_stop=lambda: polls.append(1) or len(polls) > 3)
        streamed = stream(loaded, image, "hi", settings, should_stop=lambda: polls.append(1) or len(polls) > 8)
        chunks = list(streamed)
    assert full.output_tokens == 40
    assert len(polls) < 10, len(polls)  # polled every token, stopped at the 4th
    assert streamed.result is None and len("".join(chunks).split()) < 10  # the stream ends, nothing to keep


def test_session_gone_check_follows_the_streamlit_runtime(monkeypatch):
    from streamlit.runtime import Runtime

    from dashboard.ui import cancel

    active = {"yes": True}

    class FakeRuntime:
        def is_active_session(self, session_id):
            return active["yes"] and session_id == "s1"

    class Ctx:
        session_id = "s1"

    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(lambda: FakeRuntime()))
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx", lambda: Ctx())
    gone = cancel.session_gone_check()
    assert gone() is False
    active["yes"] = False
    assert gone() is True


# ------------------------------------------------------------------ crashes on arrival
@pytest.mark.parametrize("name", ["deep-log", "sparse-state", "sparse-events"])
def test_deep_and_sparse_logs_are_problems_not_crashes(corpus, name):
    data = load_run(corpus[name], _roots(corpus))
    assert data.problems and len(data.checkpoints) == 1
    words = ("nested too deeply", "sparse file", "over the 512 MB limit")
    assert any(word in " ".join(data.problems) for word in words), data.problems


def test_checkpoint_steps_are_ascii_digits_within_int64(corpus):
    assert checkpoint_step("checkpoint-٣٤٥") is None
    assert checkpoint_step("checkpoint-99999999999999999999999999999") is None
    assert checkpoint_step("checkpoint-9223372036854775807") == 2**63 - 1
    data = load_run(corpus["odd-steps"], _roots(corpus))
    assert [c.name for c in data.checkpoints] == ["checkpoint-1"]


# ------------------------------------------------------------------ real runs misread
def test_lfs_pointer_run_is_named_and_not_loadable(corpus):
    data = load_run(corpus["lfs-pointers"], _roots(corpus))
    assert not any(c.loadable for c in data.checkpoints)
    assert data.lfs_pointers
    assert not any("not valid JSON" in p for p in data.problems), data.problems
    assert "git lfs pull" in (data.why_not_loadable() or "")


def test_lora_root_with_adapter_config_is_not_an_extra_checkpoint(corpus):
    data = load_run(corpus["lora-root"], _roots(corpus))
    assert [c.name for c in data.checkpoints] == ["checkpoint-1", "checkpoint-2"]
    assert [r.n_checkpoints for r in list_runs(corpus["_root"]) if r.name == "lora-root"] == [2]


def test_windows_best_checkpoint_and_best_global_step_fallback(corpus):
    assert load_run(corpus["windows-best"], _roots(corpus)).best_checkpoint.name == "checkpoint-2"
    foreign = load_run(corpus["foreign-best"], _roots(corpus))
    assert foreign.best_checkpoint is not None and foreign.best_checkpoint.name == "checkpoint-1"
    assert any("using best_global_step 1" in p for p in foreign.problems), foreign.problems


def test_problem_messages_quote_file_text_only_as_short_excerpts(corpus):
    data = load_run(corpus["foreign-best"], _roots(corpus))
    assert all(len(p) < 300 for p in data.problems)
    assert REMOTE_IMAGE[:20] in " ".join(data.problems)  # quoted, to be escaped by the page


def test_no_loadable_checkpoint_reason_names_the_run(corpus):
    reason = load_run(corpus["shard-escape"], _roots(corpus)).why_not_loadable()
    assert reason is not None and reason.startswith("Run shard-escape has no loadable checkpoint")
    assert "outside the runs root" in reason


def test_torch_untouched_by_budget_checks(tiny_llava_dir, tmp_path):
    """A config describing ~5 GB is measured on the meta device: nothing real is allocated, nothing leaks.

    ``init_empty_weights`` patches ``nn.Module.register_parameter`` while it is active; were it left on, every
    module built afterwards would be on ``meta``, and were the estimate built for real the RSS would jump by GBs.
    """
    import psutil

    from dashboard.models.budget import config_param_bytes

    folder = tmp_path / "huge"
    folder.mkdir()
    config = json.loads((tiny_llava_dir / "config.json").read_text())
    config["text_config"].update(hidden_size=4096, intermediate_size=11008, num_hidden_layers=24,
                                 num_attention_heads=32, num_key_value_heads=32)
    (folder / "config.json").write_text(json.dumps(config))
    rss_before = psutil.Process().memory_info().rss
    described = config_param_bytes(folder, torch.float32)
    grown = psutil.Process().memory_info().rss - rss_before
    assert described > 4 * 10**9
    assert grown < 500 * 10**6, f"estimating grew RSS by {grown / 1e6:.0f} MB"
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
    assert torch.empty(0).device.type == "cpu"


def test_corpus_is_json_readable(corpus):
    assert json.loads((corpus["windows-best"] / "trainer_state.json").read_text())["best_global_step"] == 2


def test_area_sized_processors_are_checked_as_areas(tmp_path):
    """Qwen2-VL gives ``size`` as pixel areas: a real 12.8 MP max passes, a 1 GP one is refused."""
    import json

    from dashboard.models.budget import ConfigBudgetError, check_processor_config

    folder = tmp_path / "ckpt"
    folder.mkdir()
    section = {"merge_size": 2, "patch_size": 14, "size": {"shortest_edge": 3136, "longest_edge": 12845056}}
    (folder / "preprocessor_config.json").write_text(json.dumps(section))
    check_processor_config(folder, [tmp_path])
    section["size"]["longest_edge"] = 1_000_000_000
    (folder / "preprocessor_config.json").write_text(json.dumps(section))
    with pytest.raises(ConfigBudgetError, match="px²"):
        check_processor_config(folder, [tmp_path])
