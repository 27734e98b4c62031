"""A self-contained HTML page for reading a scored set of responses token by token.

Each response is shown as text with every token shaded by its JS divergence (full or top-p, switchable);
hovering a token shows its position, both divergences and the base and tuned models' top-5 next tokens with
probabilities; a filter keeps correct or incorrect responses; tokens of cross-sampled responses that the
intervention policy chose are outlined. One file, no network: the data is embedded as JSON and drawn by a
small script, so it opens anywhere and can be mailed or embedded in a notebook.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import polars as pl

from ..core.paths import atomic
from ..models.scoring import TOP_TOKENS

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
header { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; z-index: 1; }
.legend span { display: inline-block; padding: 0 .4em; font-family: monospace; }
.response { margin: .8em 0; padding: .5em .7em; border: 1px solid #ddd; border-radius: 4px; }
.response .meta { font-size: .85em; color: #555; margin-bottom: .3em; }
.response .problem { font-size: .85em; color: #333; white-space: pre-wrap; margin-bottom: .3em; }
.text { font-family: monospace; white-space: pre-wrap; line-height: 1.6; }
.tok { border-radius: 2px; cursor: default; }
.tok.intervened { outline: 2px solid #1f4e9c; outline-offset: -1px; }
#tip { position: fixed; display: none; background: #fff; border: 1px solid #888; padding: .5em; font-size: .8em;
       box-shadow: 2px 2px 6px rgba(0,0,0,.2); pointer-events: none; z-index: 2; max-width: 36em; }
#tip table { border-collapse: collapse; display: inline-table; margin-right: 1em; vertical-align: top; }
#tip td, #tip th { padding: 0 .4em; font-family: monospace; text-align: left; }
"""

_SCRIPT = """
(() => {  // no globals: the page may be embedded in a notebook
const D = JSON.parse(document.getElementById('data').textContent);
const MIN = 1e-4, MAX = Math.log(2);
const esc = s => s.replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
const show = s => esc(s).replace(/\\n/g, '\\u21b5\\n');
function shade(js) {
  if (!(js > MIN)) return 'transparent';
  const a = Math.min(1, Math.log(js / MIN) / Math.log(MAX / MIN));
  return `rgba(214, 39, 40, ${(0.08 + 0.8 * a).toFixed(3)})`;
}
function draw() {
  const which = document.getElementById('filter').value, metric = +document.getElementById('metric').value;
  const out = [];
  let shown = 0;
  D.responses.forEach((r, i) => {
    if (which === 'correct' && !r.correct || which === 'incorrect' && r.correct) return;
    shown++;
    const toks = r.tokens.map((t, j) =>
      `<span class="tok${t[3] ? ' intervened' : ''}" data-r="${i}" data-t="${j}" style="background:${shade(t[1 + metric])}">${show(D.vocab[t[0]])}</span>`);
    const n_int = r.tokens.filter(t => t[3]).length;
    out.push(`<div class="response" data-correct="${r.correct}"><div class="meta">response ${r.response} · problem ${r.problem} · ` +
      `${r.correct ? '\\u2713 correct' : '\\u2717 incorrect'} · ${r.tokens.length} tokens` +
      (D.cross ? ` · ${n_int} from the intervention` : '') + `</div>` +
      (r.problem_text ? `<div class="problem">${esc(r.problem_text)}</div>` : '') +
      `<div class="text">${toks.join('')}</div></div>`);
  });
  document.getElementById('responses').innerHTML = out.join('');
  document.getElementById('count').textContent = `${shown} of ${D.responses.length} responses`;
}
function topTable(title, ids, probs) {
  return `<table><tr><th colspan=2>${title}</th></tr>` +
    ids.map((id, k) => `<tr><td>${show(D.vocab[id])}</td><td>${probs[k].toFixed(4)}</td></tr>`).join('') + '</table>';
}
function hover(e) {
  const tip = document.getElementById('tip');
  const el = e.target.closest('.tok');
  if (!el) { tip.style.display = 'none'; return; }
  const r = D.responses[+el.dataset.r], t = r.tokens[+el.dataset.t];
  tip.innerHTML = `<div><b>${show(D.vocab[t[0]])}</b> at position ${+el.dataset.t} · JS ${t[1].toExponential(2)} · ` +
    `top-p JS ${t[2].toExponential(2)}${t[3] ? ' · <b>from the intervention</b>' : ''}</div>` +
    topTable('base top-5', t[4], t[5]) + topTable('tuned top-5', t[6], t[7]);
  tip.style.display = 'block';
  tip.style.left = Math.min(e.clientX + 12, window.innerWidth - tip.offsetWidth - 8) + 'px';
  tip.style.top = (e.clientY + 16) + 'px';
}
document.getElementById('filter').onchange = draw;
document.getElementById('metric').onchange = draw;
document.getElementById('responses').addEventListener('mouseover', hover);
document.getElementById('responses').addEventListener('mouseleave', () => document.getElementById('tip').style.display = 'none');
draw();
if (location.hash === '#selftest') {  // for headless tests: hover the first token and keep the tooltip
  const first = document.querySelector('.tok');
  first.dispatchEvent(new MouseEvent('mouseover', {bubbles: true, clientX: 10, clientY: 10}));
  document.body.dataset.selftest = document.getElementById('tip').innerHTML.includes('tuned top-5') ? 'ok' : 'failed';
}
})();
"""


def page_data(table: pl.DataFrame, tokenizer, problem_texts: list[str] | None = None,
              max_responses: int | None = 100) -> dict:
    """The JSON the page draws: per response its tokens as [id, JS, top-p JS, intervened, base top ids, base
    top probs, tuned top ids, tuned top probs], and the text of every id used (decoded one token at a time)."""
    needed = {"response", "problem", "position", "token_id", "js", "js_top_p", "base_top_ids", "base_top_prob",
              "tuned_top_ids", "tuned_top_prob"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise ValueError(f"the table lacks columns {missing}: view a table written by `tokenshift score` "
                         "(or shifts.shift_table)")
    cross = "intervened" in table.columns
    keep = table["response"].unique(maintain_order=True)
    if max_responses is not None:
        keep = keep.head(max_responses)
    rows = table.filter(pl.col("response").is_in(keep.implode())).sort("response", "position")
    vocab: dict[int, int] = {}
    ref = lambda i: vocab.setdefault(int(i), len(vocab))
    responses = []
    for (response,), group in rows.group_by("response", maintain_order=True):
        tokens = []
        for t in group.iter_rows(named=True):
            tokens.append([ref(t["token_id"]), round(t["js"], 6), round(t["js_top_p"], 6),
                           bool(t["intervened"]) if cross else False,
                           [ref(i) for i in t["base_top_ids"]], [round(p, 4) for p in t["base_top_prob"]],
                           [ref(i) for i in t["tuned_top_ids"]], [round(p, 4) for p in t["tuned_top_prob"]]])
        problem = group["problem"][0]
        responses.append({"response": int(response), "problem": int(problem),
                          "correct": bool(group["correct"][0]) if "correct" in group.columns else False,
                          "problem_text": problem_texts[problem] if problem_texts else None, "tokens": tokens})
    texts = [""] * len(vocab)
    for token_id, k in vocab.items():
        texts[k] = tokenizer.decode([token_id], skip_special_tokens=False)
    return {"responses": responses, "vocab": texts, "cross": cross, "top": TOP_TOKENS}


def render(table: pl.DataFrame, tokenizer, problem_texts: list[str] | None = None, title: str = "Token viewer",
           max_responses: int | None = 100) -> str:
    """The page as one HTML string."""
    data = json.dumps(page_data(table, tokenizer, problem_texts, max_responses), separators=(",", ":"))
    data = data.replace("</", "<\\/")  # a token "</script>" must not end the data block
    legend = "".join(f'<span style="background:rgba(214,39,40,{0.08 + 0.8 * a:.2f})">{v}</span>'
                     for v, a in (("1e-4", 0), ("1e-3", 0.25), ("1e-2", 0.5), ("0.1", 0.75), ("ln 2", 1)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><header><b>{html.escape(title)}</b> &nbsp;
<label>show <select id="filter"><option value="all">all</option><option value="correct">correct</option>
<option value="incorrect">incorrect</option></select></label> &nbsp;
<label>shade by <select id="metric"><option value="1">top-p JS</option><option value="0">full JS</option></select></label>
&nbsp; <span id="count"></span>
<div class="legend">JS divergence: {legend} &nbsp; (hover a token for both models' top-5; outlined: taken from the
intervention policy)</div></header>
<div id="responses"></div><div id="tip"></div>
<script type="application/json" id="data">{data}</script>
<script>{_SCRIPT}</script></body></html>
"""


def write(path, table: pl.DataFrame, tokenizer, problem_texts: list[str] | None = None, title: str = "Token viewer",
          max_responses: int | None = 100) -> Path:
    path = Path(path)
    with atomic(path) as tmp:
        tmp.write_text(render(table, tokenizer, problem_texts, title, max_responses), encoding="utf-8")
    return path
