import random

import pytest
from conftest import TINY_SHAPE, TINY_TOKENIZER
from tokenshift.models import loading
from tokenshift.organism import architecture, task
from tokenshift.organism.tokenizer import build_tokenizer
from transformers import AutoTokenizer


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("model")
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, path)
    return path


def texts(n=200):
    rng = random.Random(5)
    problems = task.sample_problems(n, "held_out", seed=3)
    return [p.prompt + task.Demonstrator().write(p, rng, max_chars=400).text for p in problems] + \
        [task.OtherWriter().write(p, rng).text for p in problems[:50]] + ["", " ", "0", "  two  spaces\n\nend"]


def test_autotokenizer_on_model_dir_round_trips(saved_dir, tokenizer):
    loaded = AutoTokenizer.from_pretrained(saved_dir)
    assert type(loaded).__name__ == "Qwen2Tokenizer" and loaded.get_vocab() == tokenizer.get_vocab()
    for text in texts():
        ids = loaded(text)["input_ids"]
        assert ids == tokenizer(text)["input_ids"]
        assert loaded.decode(ids) == text


def test_subwords_for_words_digits_one_by_one(tokenizer):
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(" So the answer is 9187.")["input_ids"])
    assert pieces == ["ĠSo", "Ġthe", "Ġanswer", "Ġis", "Ġ", "9", "1", "8", "7", "."]
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts()]
    assert sum(lengths) < 0.6 * sum(len(t) for t in texts())  # merges make it shorter than characters


def test_the_vocabulary_is_subword_sized_and_built_deterministically():
    full = build_tokenizer()
    assert 400 <= len(full) <= 2000
    assert full.get_vocab() == build_tokenizer().get_vocab()
    assert build_tokenizer(TINY_TOKENIZER).get_vocab() != full.get_vocab()  # the corpus decides the merges


def test_special_tokens_survive_saving(saved_dir, tokenizer):
    loaded = AutoTokenizer.from_pretrained(saved_dir)
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert loaded.padding_side == "left"
