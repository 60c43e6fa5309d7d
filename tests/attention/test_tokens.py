"""Token labels agree with the answer text: special tokens marked, other tokens as decoded text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from dashboard.attention.analysis import analyse
from dashboard.models.loading import load_checkpoint
from tests.attention import family_checkpoints as fc

MARK = " (special)"  # what the page appends; spelled out so a renamed constant cannot hide a change


@pytest.fixture(scope="module")
def qwen_run(tmp_path_factory: pytest.TempPathFactory):
    loaded = load_checkpoint(fc.qwen2_vl(tmp_path_factory.mktemp("qwen") / "q"), torch.device("cpu"))
    image = Image.fromarray(np.full((56, 84, 3), 128, np.uint8))
    return loaded, analyse(loaded, image, "what is it ?", max_new_tokens=6)


def test_qwen_special_tokens_are_marked_like_the_answer_text_hides_them(qwen_run) -> None:
    loaded, run = qwen_run
    tok = loaded.processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|image_pad|>", "</s>", "red", "square")]
    assert run.token_names(ids) == ["<|video_pad|>" + MARK, "<|image_pad|>" + MARK, "</s>" + MARK, "red", "square"]
    # the generated tokens: dropping the marked ones leaves the answer text unchanged; each unmarked one is in it
    generated = run.result.generated_ids
    assert run.tokens == run.token_names(generated)
    kept = [i for i, label in zip(generated, run.tokens, strict=True) if not label.endswith(MARK)]
    assert tok.decode(kept, skip_special_tokens=False) == run.text
    assert run.special_steps() == [s for s, label in enumerate(run.tokens) if label.endswith(MARK)]


def _byte_level_tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["what is it ? a red square", "a blue square is red"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>")


def test_byte_level_pieces_show_as_decoded_text() -> None:
    from dashboard.attention.tokens import TokenNames

    tok = _byte_level_tokenizer()
    ids = tok(" red square")["input_ids"] + [tok.eos_token_id]
    assert tok.convert_ids_to_tokens(ids[0]).startswith("Ġ")  # the raw piece is not what the answer shows
    labels = TokenNames(tok)(ids)
    assert labels[-1] == "<|im_end|>" + MARK
    assert "".join(labels[:-1]) == tok.decode(ids, skip_special_tokens=True) == " red square"


def test_whitespace_and_partial_characters_stay_visible() -> None:
    from dashboard.attention.tokens import TokenNames

    tok = _byte_level_tokenizer()
    names = TokenNames(tok)
    space = tok.convert_tokens_to_ids("Ġ")
    assert names([space]) == ["␣"]
    first_byte_of_e_acute = tok.convert_tokens_to_ids("Ã")  # "é" is two bytes; one alone decodes to U+FFFD
    assert names([first_byte_of_e_acute]) == ["Ã"]


def test_json_export_names_the_token_id(qwen_run) -> None:
    _, run = qwen_run
    payload = run.to_json(0, None, "mean")
    assert payload["token_id"] == run.result.generated_ids[0] and payload["token"] == run.tokens[0]
