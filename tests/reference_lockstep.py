"""The per-token lockstep, the reference the suite's two-model decoder (``models.draft_verify``) is tested
against: one response at a time, both models reading the whole sequence afresh at every step (no KV cache, no
batch, no padding), the rule asked about one step, the token drawn with the response's own uniform number.
Slow and plain on purpose: it shares with the suite only the draw, the divergences and the random streams."""

import torch
from tokenshift.analyses.cross_sampling import CrossSamples, DivergenceRule, RandomRule
from tokenshift.models.divergence import entropy, js_divergence, log_probs, top_p_js
from tokenshift.models.sampling import draw, response_numbers, stop_set, uniforms


@torch.no_grad()
def lockstep(primary, intervention, prompts, *, eps=float("inf"), random_fraction=None, cap=None, n=1,
             max_new_tokens, eos_token_id, vocab_size=None, temperature=1.0, top_p=1.0, js_top_p=1.0, seed=0,
             responses=None, rule=None, **_) -> CrossSamples:
    """``cross_sample``'s result for the same arguments (execution settings such as ``batch_size`` ignored)."""
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    numbers, stops = response_numbers(responses, len(jobs)), stop_set(eos_token_id)
    if rule is None:
        rule = DivergenceRule(eps, cap, len(jobs)) if random_fraction is None else \
            RandomRule(random_fraction, seed, numbers, max_new_tokens)
    out = CrossSamples(prompt_index=jobs, response_ids=[], stopped=[], stop_token=[])
    for r, (prompt, u) in enumerate(zip((prompts[j] for j in jobs), uniforms(seed, numbers, max_new_tokens))):
        seq, chosen, js_seen, changed, stop = list(prompt), [], [], [], None
        for t in range(max_new_tokens):
            p_logits, q_logits = (m(torch.tensor([seq])).logits[:, -1, :vocab_size].float() for m in
                                  (primary, intervention))
            p, q = log_probs(p_logits)[1], log_probs(q_logits)[1]
            js = top_p_js(p, q, js_top_p) if js_top_p < 1 else js_divergence(p, q)
            h = torch.stack([entropy(p), entropy(q)]).view(2, 1, 1)
            fire = bool(rule.fires(js.view(1, 1), torch.tensor([r]), torch.tensor([[t]]), h)[0, 0])
            own = int(draw(p_logits, temperature, top_p, u[t].view(1, 1)))
            token = int(draw(q_logits, temperature, top_p, u[t].view(1, 1))) if fire else own
            if fire:
                rule.handed(torch.tensor([r]))
            chosen.append(fire)
            js_seen.append(float(js))
            changed.append(fire and token != own)
            if token in stops:
                stop = token
                break
            seq.append(token)
        out.response_ids.append(seq[len(prompt):])
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
        out.chosen.append(chosen)
        out.js.append(js_seen)
        out.changed.append(changed)
    return out
