"""The demo trainer's additions to the stock Trainer: per-patch targets, the training-only
per-patch loss, its log entry, single-object training scenes, and the question-first template."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

from dashboard.demo import task as T
from dashboard.demo.build import DEMO_SPEC
from dashboard.demo.modeling import build_model, build_processor
from dashboard.demo.train import (
    AnswerOnlyCollator,
    DemoTrainer,
    ListDataset,
    SyntheticTaskDataset,
    TrainConfig,
    per_patch_loss,
    prompt_text,
    train_demo,
)


@pytest.fixture(scope="module")
def processor():
    return build_processor(T.VOCAB, DEMO_SPEC)


def _examples(n: int, seed: int = 0) -> list[T.Example]:
    return list(T.generate_examples(n, seed=seed))


def test_the_question_comes_before_the_image_tokens(processor) -> None:
    """Causal attention: only with the text first can an image token attend to the question."""
    text = prompt_text(processor, "where is the red object ?")
    assert text.index("where is the red object ?") < text.index("<image>")
    assert text.rstrip().endswith("ASSISTANT:")
    ids = processor(images=[_examples(1)[0].image], text=[text], return_tensors="pt")["input_ids"][0]
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((ids == image_id).sum()) == T.GRID * T.GRID == DEMO_SPEC.image_tokens


def test_patch_targets_put_each_objects_words_on_its_image_token(processor) -> None:
    examples = _examples(4, seed=3)
    batch = AnswerOnlyCollator(processor, patch_targets=True)(examples)
    targets = batch["patch_targets"]
    assert targets.shape == (4, T.GRID * T.GRID, len(processor.tokenizer))
    assert torch.allclose(targets.sum(-1), torch.ones(4, T.GRID * T.GRID))
    vocab = processor.tokenizer.convert_tokens_to_ids
    for i, ex in enumerate(examples):
        for obj in ex.objects:
            row = targets[i, obj.row * T.GRID + obj.col]
            assert {int(k) for k in row.nonzero()} == set(vocab(list(obj.words)))
        empty = next(p for p, w in enumerate(ex.patch_words()) if w == (T.PATCH_BACKGROUND,))
        assert targets[i, empty, vocab(T.PATCH_BACKGROUND)] == 1.0
    assert "patch_targets" not in AnswerOnlyCollator(processor)(examples)


def test_per_patch_loss_is_low_only_when_the_image_tokens_predict_their_words() -> None:
    targets = torch.zeros(1, 2, 3)
    targets[0, 0, 0] = 1.0
    targets[0, 1, 1:] = 0.5
    input_ids = torch.tensor([[7, 9, 9, 7]])  # 9 = image token
    right = torch.zeros(1, 4, 3)
    right[0, 1, 0] = right[0, 2, 1] = right[0, 2, 2] = 20.0
    wrong = right.flip(-1)
    assert per_patch_loss(right, input_ids, 9, targets) < 0.4 < per_patch_loss(wrong, input_ids, 9, targets)


def test_curriculum_sets_object_counts_by_share_of_training_done() -> None:
    from dashboard.demo.build import CURRICULUM

    data = SyntheticTaskDataset(1000, seed=0, curriculum=CURRICULUM)
    counts = [len(data[i].objects) for i in range(0, 1000, 5)]
    first, middle, last = counts[:20], counts[20:70], counts[70:]  # items 0–99, 100–349, 350–999
    assert set(first) == {1} and set(middle) == {2, 3} and set(last) == {2, 3, 4, 5}
    assert data.object_range(999) == (T.MIN_OBJECTS, T.MAX_OBJECTS)
    plain = SyntheticTaskDataset(1000, seed=0)
    assert plain.object_range(0) == (T.MIN_OBJECTS, T.MAX_OBJECTS)
    assert data[5].answer == data[5].answer and data[5].prompt == SyntheticTaskDataset(
        1000, seed=0, curriculum=CURRICULUM)[5].prompt  # item i is fixed


def test_training_reads_items_in_order(processor, tmp_path: Path) -> None:
    """The curriculum relies on it: a shuffling sampler would mix the stages."""
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=3, report_to=[], use_cpu=True)
    trainer = DemoTrainer(model=build_model(processor, DEMO_SPEC, seed=0), args=args,
                          train_dataset=ListDataset(_examples(6)), data_collator=lambda exs: [e.id for e in exs],
                          accuracy_examples=[])
    assert list(trainer.get_train_dataloader()) == [["00000", "00001", "00002"], ["00003", "00004", "00005"]]


@pytest.mark.parametrize("layer", [0, 1])  # 0: on the logits; 1: on the logit lens after decoder layer 1
def test_training_logs_patch_loss_and_eval_loss_is_the_answer_loss_alone(processor, tmp_path: Path,
                                                                         layer: int) -> None:
    """The per-patch loss is added while training (and logged apart), never to ``eval_loss``."""
    model = build_model(processor, DEMO_SPEC, seed=0)
    eval_examples = _examples(8, seed=11)
    config = TrainConfig(max_steps=4, save_steps=4, logging_steps=2, batch_size=4, eval_batch_size=8,
                         patch_loss_weight=1.0, patch_loss_layer=layer, tensorboard=False, spec=DEMO_SPEC)
    trainer = train_demo(tmp_path / "run", processor, model, eval_examples, config)
    history = trainer.state.log_history
    train_logs = [e for e in history if "loss" in e and "eval_loss" not in e and "train_runtime" not in e]
    assert train_logs and all(e["patch_loss"] > 0 for e in train_logs)
    collator = AnswerOnlyCollator(processor, patch_targets=True)
    batch = collator(eval_examples)
    batch.pop("patch_targets")
    model.eval()
    with torch.no_grad():
        answer_loss = float(model(**batch).loss)
    eval_loss = next(e["eval_loss"] for e in history if "eval_loss" in e)
    assert eval_loss == pytest.approx(answer_loss, rel=1e-4)



def test_the_dashboards_template_renderer_gives_the_training_prompt(processor) -> None:
    """The Inference page renders the saved template in its sandbox: the text must be the trained one."""
    from dashboard.chat_template import render_chat_template

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where is the red object ?"}]}]
    rendered = render_chat_template(processor.chat_template, {"messages": messages, "add_generation_prompt": True})
    assert rendered == prompt_text(processor, "where is the red object ?")
