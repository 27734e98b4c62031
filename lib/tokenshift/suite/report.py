"""A static HTML report of a profile's executed notebooks, written by every run of the runner beside them
(``papermill_runs/<profile>/report/``): an index page with the findings' verdicts, highlighted by outcome, and a
link to each notebook's own page (nbconvert's lab template, figures inline). Pages hold nothing of the run's
clock (papermill's timings are left out), so the same notebooks give the same pages.

    python -m tokenshift.suite.report --check papermill_runs/smoke/report

opens every page in headless Chromium and checks that it loads, every image renders and no cell shows an error;
``make test`` does so for the smoke profile's report."""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from . import findings, profiles

COLOURS = {"agrees": "#1a7f37", "disagrees": "#cf222e", "inconclusive": "#9a6700", "not testable": "#6e7781"}
# run in the page when its address ends in #selftest: what a headless browser then reports in the DOM
SELFTEST = """<script>
window.addEventListener("load", () => {
  if (location.hash !== "#selftest") return;
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const errors = document.querySelector('meta[name="tokenshift-errors"]').content;
  const out = document.createElement("div");
  out.id = "selftest";
  out.textContent = `images=${images.length} broken=${broken} errors=${errors}`;
  document.body.appendChild(out);
});
</script>"""
RESULT = re.compile(r'<div id="selftest">images=(\d+) broken=(\d+) errors=(\d+)</div>')


def errors_in(notebook) -> int:
    """The cells of an executed notebook whose output is an error (an exception's traceback)."""
    return sum(any(o.get("output_type") == "error" for o in cell.get("outputs", [])) for cell in notebook.cells)


def page(body: str, errors: int) -> str:
    """An HTML page with the error count a browser check reads, and the self-test."""
    meta = f'<meta name="tokenshift-errors" content="{errors}">'
    return body.replace("<head>", "<head>\n" + meta, 1).replace("</body>", SELFTEST + "\n</body>", 1)


def write(profile: str, runs: Path, out: Path) -> list[Path]:
    """The report of the executed notebooks in ``runs`` (and the profile's findings) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    pages, errors = [], {}
    for path in sorted(runs.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        notebook.metadata.pop("papermill", None)
        for cell in notebook.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        body, _ = exporter.from_notebook_node(notebook)
        errors[path.stem] = errors_in(notebook)
        target = out / f"{path.stem}.html"
        target.write_text(page(body, errors[path.stem]))
        pages.append(target)
    index = out / "index.html"
    index.write_text(page(index_body(profile, errors), sum(errors.values())))
    return [index, *pages]


def index_body(profile: str, errors: dict[str, int]) -> str:
    found = findings.load(profile)
    rows = "".join(
        f'<tr><td>{html.escape(found[name + findings.CLAIM_SUFFIX])}</td><td><code>{html.escape(name)}</code></td>'
        f'<td>{found[name]:.3g}</td><td style="color:{COLOURS.get(verdict, "#000")};font-weight:bold">'
        f"{html.escape(verdict)}</td></tr>"
        for name in found if not name.endswith(findings.ANNOTATIONS)
        for verdict in [found.get(name + findings.VERDICT_SUFFIX)] if verdict is not None)
    notebooks = "".join(f'<li><a href="{name}.html">{name}</a>' + (f" ({n} cell(s) with an error)" if n else "")
                        + "</li>" for name, n in errors.items())
    label = html.escape(profiles.name(profile))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tokenshift: {label}</title></head>"
            f"<body style='font-family:sans-serif;max-width:70em;margin:auto'><h1>tokenshift: the {label} profile</h1>"
            f"<h2>Notebooks</h2><ul>{notebooks}</ul><h2>The paper's claims, judged</h2>"
            "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>claim</th><th>finding</th>"
            f"<th>value</th><th>verdict</th></tr>{rows}</table></body></html>")


def check(folder: Path) -> list[str]:
    """Every page of a report opened in headless Chromium: what is wrong with each (empty: nothing)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return ["headless chromium is needed to check the report: `make browser` installs Debian's chromium"]
    pages = sorted(folder.glob("*.html"))
    problems = [] if pages else [f"{folder} holds no report pages"]
    for path in pages:
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                              "--dump-dom", f"file://{path.resolve()}#selftest"], capture_output=True, text=True,
                             timeout=180).stdout
        found = RESULT.search(dom)
        if found is None:
            problems.append(f"{path.name}: the page did not load (no self-test result)")
            continue
        images, broken, errors = map(int, found.groups())
        if broken:
            problems.append(f"{path.name}: {broken} of {images} images do not render")
        if errors:
            problems.append(f"{path.name}: {errors} cell(s) show an error")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", type=Path, required=True, help="a report folder to check in headless Chromium")
    args = parser.parse_args(argv)
    problems = check(args.check)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{len(list(args.check.glob('*.html')))} report pages load, every image renders, no cell shows an error")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
