import pytest
import torch
from tokenshift.models import batching, loading
from tokenshift.models.loading import load_model


def test_save_load_round_trip(tmp_path, tokenizer, tiny_model):
    loading.save(tiny_model, tokenizer, tmp_path)
    loaded, loaded_tok = load_model(tmp_path)
    ids = torch.tensor([tokenizer("12+34=so 46")["input_ids"]])
    assert torch.equal(tiny_model(ids).logits, loaded(ids).logits)
    assert loaded_tok.get_vocab() == tokenizer.get_vocab()


def test_make_batch_marks_the_positions_that_predict_response_tokens():
    batch = batching.make_batch([[1, 5, 6], [1, 7]], [[8, 2], [9, 9, 9]], pad_id=0)
    assert batch.ids.tolist() == [[1, 5, 6, 8, 2], [1, 7, 9, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    # logprobs[:, t] scores ids[:, t+1]: response tokens start at index len(prompt)
    assert batch.response_mask.tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]


def test_make_batch_refuses_sequences_longer_than_the_context():
    with pytest.raises(ValueError, match="exceeds the model's context of 4"):
        batching.make_batch([[1, 2, 3]], [[4, 5]], pad_id=0, max_len=4)


def test_token_logprobs_match_a_manual_computation(tokenizer, tiny_model):
    batch = batching.make_batch([[1, 5, 6]], [[8, 2]], pad_id=0)
    logp = batching.token_logprobs(tiny_model, batch)
    logits = tiny_model(batch.ids).logits[0]
    manual = [logits[t].log_softmax(-1)[batch.ids[0, t + 1]] for t in range(4)]
    assert torch.allclose(logp[0], torch.stack(manual), atol=1e-6)


def test_right_padding_does_not_change_real_positions(tokenizer, tiny_model):
    alone = batching.token_logprobs(tiny_model, batching.make_batch([[1, 5]], [[6, 2]], pad_id=0))
    padded = batching.token_logprobs(tiny_model, batching.make_batch([[1, 5], [1, 5, 6, 7]], [[6, 2], [8, 9, 2]], pad_id=0))
    assert torch.allclose(alone[0], padded[0, :3], atol=1e-5)


def test_token_logprobs_in_length_groups_match_each_sequence_alone(tokenizer, tiny_model):
    """Rows run a few at a time, sorted by length and cut to their group's longest: every real position's
    log-prob and the gradient through them equal those of each sequence run alone, unpadded."""
    prompts = [[1, 5], [1, 5, 6, 7], [1], [1, 9, 9], [1, 4, 4, 4, 4]]
    responses = [[6, 2], [8, 9, 2], [3, 3, 3, 3, 3, 2], [2], [7, 2]]
    batch = batching.make_batch(prompts, responses, pad_id=0)
    grouped = batching.token_logprobs(tiny_model, batch, rows_per_pass=2)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids = torch.tensor([p + r])
        alone = tiny_model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        assert torch.allclose(grouped[i, : len(alone)], alone, atol=1e-5)
        assert (grouped[i, len(alone):] == 0).all()
    one_pass = batching.token_logprobs(tiny_model, batch, rows_per_pass=len(prompts))
    grads = []
    for logp in (grouped, one_pass):
        tiny_model.zero_grad()
        (logp * batch.response_mask).sum().backward()
        grads.append([p.grad.clone() for p in tiny_model.parameters()])
        logp = None
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


def test_each_rank_owns_its_own_group_of_gpus():
    """The mapping behind --gpus-per-rank, without GPUs: which GPUs a local rank owns, and the device map that
    shards a model over that group only."""
    assert loading.gpu_group(0, 1, 8) == list(range(8))  # a lone process: every GPU
    assert loading.gpu_group(3, 8, 8) == [3]  # one per rank under a launcher
    assert [loading.gpu_group(r, 4, 8, 2) for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match=r"local rank 2 with 4 GPU\(s\) per rank would own GPUs 8-11, but this node "
                                         r"has 8: start at most 2 process\(es\) per node"):
        loading.gpu_group(2, 3, 8, 4)
    with pytest.raises(ValueError, match="gpus_per_rank must be an integer of at least 1, got 0"):
        loading.gpu_group(0, 1, 8, 0)
    assert loading.placement([5], {}) == {"device_map": {"": 5}}
    assert loading.placement([2, 3], {2: 100, 3: 80}) == {"device_map": "auto", "max_memory": {2: 90, 3: 72}}


def test_a_group_placement_shards_the_model_over_the_group_only():
    """transformers' own planner for device_map="auto" (what from_pretrained runs), given a group's placement:
    a Qwen2-shaped model is balanced over the group's GPUs (2 and 3 of the node) and nothing lands elsewhere."""
    import qwen_like
    from transformers.integrations.accelerate import _get_device_map

    model = qwen_like.model(qwen_like.tokenizer("<|endoftext|>"), seed=0)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    where = loading.placement([2, 3], {2: size, 3: size})
    assert set(_get_device_map(model, where["device_map"], where["max_memory"], None).values()) == {2, 3}


def test_a_hub_model_pinned_to_a_revision(tmp_path, monkeypatch, tokenizer, tiny_model):
    """``ID@REVISION`` pins a hub model: split off for from_pretrained, keyed by the commit without asking the
    hub, named in the download advice; a local path with an @ in it is still a path."""
    from tokenshift.core.cache import model_fingerprint, split_revision

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert split_revision(f"Qwen/Qwen2.5-32B@{sha}") == ("Qwen/Qwen2.5-32B", sha)
    assert split_revision("Qwen/Qwen2.5-32B") == ("Qwen/Qwen2.5-32B", None)
    assert loading.hub_arguments("Qwen/Qwen2.5-32B@v1.0") == ("Qwen/Qwen2.5-32B", {"revision": "v1.0"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_fingerprint(f"Qwen/Qwen2.5-32B@{sha}") == f"hub:Qwen/Qwen2.5-32B@{sha}"
    with pytest.raises(ConnectionError, match=r"`hf download Qwen/Qwen2.5-32B --revision v1.0 --local-dir DIR`"):
        loading.check_model_source("Qwen/Qwen2.5-32B@v1.0")
    with pytest.raises(FileNotFoundError, match=r"model path Qwen/Qwen2.5-32B@ does not exist"):
        loading.check_model_source("Qwen/Qwen2.5-32B@")
    local = tmp_path / "pair@v1"
    loading.save(tiny_model, tokenizer, local)
    assert split_revision(local) == (str(local), None) and load_model(local)[1].get_vocab() == tokenizer.get_vocab()
