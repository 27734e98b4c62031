"""The token viewer: its page data, and that it renders in a real browser (headless Debian chromium)."""

import re
import shutil
import subprocess

import polars as pl
import pytest
from conftest import TINY_SHAPE
from tokenshift.analyses import viewer
from tokenshift.models import scoring
from tokenshift.organism import architecture


@pytest.fixture
def scored(tokenizer):
    base, rl = (architecture.new_model(tokenizer, TINY_SHAPE, seed=s).eval() for s in (0, 1))
    prompts = [tokenizer("12+34=")["input_ids"], tokenizer("5+6=")["input_ids"]]
    responses = [tokenizer("4+2=6 so 46")["input_ids"], tokenizer("so 11")["input_ids"]]
    table = scoring.score_pair(base, rl, tokenizer, prompts, responses, show_progress=False)
    return table.with_columns(problem=pl.col("response"), correct=pl.col("response") == 0,
                              intervened=pl.col("position") % 3 == 0)


def test_page_data_holds_every_token_with_both_top5(scored, tokenizer):
    data = viewer.page_data(scored, tokenizer, problem_texts=["12+34=", "5+6="])
    assert [r["correct"] for r in data["responses"]] == [True, False] and data["cross"]
    first = data["responses"][0]["tokens"][0]
    assert data["vocab"][first[0]] == "4" and len(first[4]) == len(first[6]) == 5 and first[3] is True
    assert sum(len(r["tokens"]) for r in data["responses"]) == len(scored)
    with pytest.raises(ValueError, match=r"lacks columns \['js_top_p'\]"):
        viewer.page_data(scored.drop("js_top_p"), tokenizer)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless chromium is needed for the viewer test: `make test` installs Debian's `chromium` "
                    "package (apt-get install chromium)")
    return found


def test_the_page_renders_in_chromium_with_its_hover_data(scored, tokenizer, tmp_path):
    path = viewer.write(tmp_path / "viewer.html", scored, tokenizer, problem_texts=["12+34=", "5+6="])
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", f"file://{path}#selftest"], capture_output=True, text=True, timeout=120).stdout
    assert 'data-selftest="ok"' in dom  # the page's script ran, drew the tokens and filled the hover tooltip
    assert len(re.findall(r'class="tok( intervened)?"', dom)) == len(scored)
    assert len(re.findall(r'class="tok intervened"', dom)) == scored["intervened"].sum()
    tooltip = re.search(r'<div id="tip"[^>]*>(.*?)</div>\s*<script', dom, re.S).group(1)
    assert "base top-5" in tooltip and "tuned top-5" in tooltip and len(re.findall(r"<td>\d\.\d{4}</td>", tooltip)) == 10
    assert "2 of 2 responses" in dom


def test_a_token_spelling_a_closing_script_tag_cannot_end_the_data_block(scored):
    class Angle:  # every token decodes to "</script>"
        def decode(self, ids, skip_special_tokens=False):
            return "</script>"

    page = viewer.render(scored, Angle())
    assert page.count("</script>") == 2 and "<\\/script>" in page
