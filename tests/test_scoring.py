import pytest
import torch
from conftest import TINY_SHAPE
from tokenshift.models import loading, scoring
from tokenshift.models.sampling import sample
from tokenshift.organism import architecture
from transformers.models.qwen2 import Qwen2Tokenizer


def encode(tokenizer, texts):
    return [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in texts]


def test_a_model_against_itself_has_zero_divergence_everywhere(tokenizer, tiny_model):
    prompts = encode(tokenizer, ["1234+5678=", "9+1="])
    responses = [tokenizer("1+2=3 so 6912")["input_ids"] + [2], tokenizer("so 10")["input_ids"]]
    table = scoring.score_pair(tiny_model, tiny_model, tokenizer, prompts, responses, show_progress=False)
    assert len(table) == sum(map(len, responses))
    for col in ("js", "js_top_p", "kl_base_tuned", "kl_tuned_base"):
        assert (table[col] == 0).all(), col
    assert table["top1_agree"].all() and (table["tuned_top1_base_rank"] == 0).all()
    assert (table["topk_overlap_3"] == 1).all()
    first = table.filter(table["response"] == 0)
    assert first["token_id"].to_list() == responses[0]
    assert first["position"].to_list() == list(range(len(responses[0])))
    assert first["token"][-1] == "<eos>"
    assert ((table["rel_position"] > 0) & (table["rel_position"] < 1)).all()


def test_scores_match_an_unbatched_full_forward(tokenizer, tiny_model):
    other = architecture.new_model(tokenizer, TINY_SHAPE, seed=1).eval()
    prompts = encode(tokenizer, ["1234+5678=", "9+1="])
    responses = [tokenizer("4+8=12 so 6912")["input_ids"], tokenizer("so 10")["input_ids"] + [2]]
    table = scoring.score_pair(tiny_model, other, tokenizer, prompts, responses, batch_size=2,
                               chunk_positions=3, show_progress=False)
    from tokenshift.models.metrics import pair_metrics
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids = torch.tensor([p + r])
        with torch.no_grad():
            a = tiny_model(ids).logits[0, len(p) - 1 : -1]
            b = other(ids).logits[0, len(p) - 1 : -1]
        expected = pair_metrics(a, b)["js"]
        got = torch.tensor(table.filter(table["response"] == i)["js"].to_list())
        assert torch.allclose(got, expected, atol=1e-6)


def test_mismatched_vocabularies_are_refused_naming_tokens(tokenizer):
    vocab = dict(tokenizer.get_vocab())
    vocab["Ω"] = vocab.pop("z")
    other = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token="<bos>", eos_token="<eos>",
                           pad_token="<pad>")
    with pytest.raises(ValueError, match=r"only in base \['z'\], only in the tuned model \['Ω'\]"):
        loading.check_same_vocabulary(tokenizer, other)
    loading.check_same_vocabulary(tokenizer, tokenizer)


def test_empty_responses_and_overlong_sequences_are_refused(tokenizer, tiny_model):
    prompts = encode(tokenizer, ["1+1=", "2+2="])
    with pytest.raises(ValueError, match=r"responses \[1\] are empty"):
        scoring.score_pair(tiny_model, tiny_model, tokenizer, prompts, [[5], []], show_progress=False)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        scoring.score_pair(tiny_model, tiny_model, tokenizer, prompts[:1], [[5] * 400], show_progress=False)


def test_padded_output_layer_is_sliced_to_the_tokenizer(tokenizer, tiny_model):
    # Qwen pads its output layer past the tokenizer; rows beyond it must not enter the distributions
    padded = architecture.new_model(tokenizer, TINY_SHAPE, seed=0)
    padded.resize_token_embeddings(len(tokenizer) + 7)
    with torch.no_grad():
        padded.get_output_embeddings().weight[len(tokenizer):] = 5.0  # would dominate if not sliced
    prompts, responses = encode(tokenizer, ["1+1="]), [tokenizer("so 2")["input_ids"]]
    table = scoring.score_pair(tiny_model, padded.eval(), tokenizer, prompts, responses, show_progress=False)
    assert (table["js"] < 1e-6).all()


def test_projecting_chunk_by_chunk_gives_the_same_table(tokenizer, tiny_model, monkeypatch):
    other = architecture.new_model(tokenizer, TINY_SHAPE, seed=1).eval()
    prompts = encode(tokenizer, ["1234+5678=", "9+1="])
    responses = [tokenizer("4+8=12 so 6912")["input_ids"], tokenizer("so 10")["input_ids"] + [2]]
    score = lambda: scoring.score_pair(tiny_model, other, tokenizer, prompts, responses, chunk_positions=4,
                                       show_progress=False)
    whole = score()
    monkeypatch.setattr(scoring, "WHOLE_BATCH_ELEMENTS", 0)  # as for a batch too long to project at once
    chunked = score()
    assert whole.columns == chunked.columns
    for col in ("js", "js_top_p", "kl_base_tuned", "entropy_tuned"):
        assert torch.allclose(torch.tensor(whole[col].to_list()), torch.tensor(chunked[col].to_list()), atol=1e-6)


def test_a_model_with_a_nan_weight_is_refused_by_name(tokenizer, tiny_model, tmp_path):
    broken = architecture.new_model(tokenizer, TINY_SHAPE, seed=1)
    with torch.no_grad():
        broken.get_output_embeddings().weight[7, 0] = float("nan")  # one bad output row: NaN logits everywhere
    loading.save(broken, tokenizer, tmp_path / "broken")
    broken, _ = loading.load_model(tmp_path / "broken")
    prompts, responses = encode(tokenizer, ["1+1=", "2+2="]), [tokenizer("so 2")["input_ids"]] * 2
    with pytest.raises(ValueError, match=r"model '.*broken' gives non-finite logits .* for response 0 at position 0"):
        scoring.score_pair(tiny_model, broken, tokenizer, prompts, responses, show_progress=False)
    with pytest.raises(ValueError, match=r"model '.*broken' gives non-finite logits .* for response 0 at step 0"):
        sample(broken, prompts, max_new_tokens=4, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
