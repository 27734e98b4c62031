"""The HTML report of executed notebooks, opened in headless Chromium: pages load, images render, and a cell
that shows an error is found."""

import base64
import io
import re

import matplotlib
import nbformat
from tokenshift.suite import findings, report

matplotlib.use("Agg")


def executed(tmp_path, name, error=False):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    ax.set_title("a figure")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    cell = nbformat.v4.new_code_cell("plot()", execution_count=1, outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(buffer.getvalue()).decode()})])
    cells = [nbformat.v4.new_markdown_cell("# A notebook"), cell]
    if error:
        cells.append(nbformat.v4.new_code_cell("1/0", execution_count=2, outputs=[nbformat.v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["ZeroDivisionError"])]))
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"papermill": {"start_time": "2026-12-03T10:00:00"}})
    nbformat.write(notebook, tmp_path / f"{name}.ipynb")


def test_a_report_loads_renders_its_images_and_is_the_same_twice(tmp_path):
    from tokenshift.analyses import claims

    name = "sparsity.dapo.frac_js_lt_0.01"
    findings.record("report-test", {}, paper={name: claims.PAPER[name]},
                    verdicts=[claims.against(name, name, 0.9, 0.83, ">", (0.88, 0.92))])
    runs = tmp_path / "runs"
    runs.mkdir()
    executed(runs, "01_sparsity")
    pages = report.write("report-test", runs, tmp_path / "report")
    assert [p.name for p in pages] == ["index.html", "01_sparsity.html"]
    assert report.check(tmp_path / "report") == []
    index = (tmp_path / "report" / "index.html").read_text()
    assert "agrees" in index and "#1a7f37" in index and "2026-12-03" not in (tmp_path / "report" / "01_sparsity.html").read_text()
    first = [p.read_bytes() for p in pages]
    assert [p.read_bytes() for p in report.write("report-test", runs, tmp_path / "report")] == first


def test_a_cell_that_shows_an_error_or_a_broken_image_is_named(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    executed(runs, "03_cross_sampling", error=True)
    report.write("report-test-2", runs, tmp_path / "report")
    page = tmp_path / "report" / "03_cross_sampling.html"
    problems = report.check(tmp_path / "report")
    assert "03_cross_sampling.html: 1 cell(s) show an error" in problems
    page.write_text(re.sub(r"data:image/png;base64,[^\"]+", "data:image/png;base64,AAAA", page.read_text()))
    assert any("images do not render" in p for p in report.check(tmp_path / "report"))
