import pytest
from conftest import TINY_SHAPE
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenshift.models import loading
from tokenshift.organism import architecture
from tokenshift.organism.tokenizer import ALPHABET, check_text
from transformers import AutoTokenizer


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("model")
    loading.save(architecture.new_model(tokenizer, TINY_SHAPE, seed=0), tokenizer, path)
    return path


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_autotokenizer_on_model_dir_round_trips(saved_dir, tokenizer, text):
    loaded = AutoTokenizer.from_pretrained(saved_dir)
    ids = loaded(text)["input_ids"]
    assert ids == tokenizer(text)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert loaded.decode(ids) == text


def test_special_tokens_survive_saving(saved_dir, tokenizer):
    loaded = AutoTokenizer.from_pretrained(saved_dir)
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    assert loaded.padding_side == "left"
    assert len(loaded) == len(tokenizer) == 3 + len(ALPHABET)


def test_check_text_names_foreign_characters():
    check_text("12+34= so 46")
    with pytest.raises(ValueError, match=r"\['\?', 'A'\]"):
        check_text("A+1=?")
