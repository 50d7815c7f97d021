"""The course site (tools/site.py, tools/site_check.py): pages, links, execution, browser check.

The browser test runs when a built site exists (FLOWS_SITE, default _site) and Chromium,
chromedriver and selenium are installed; .ci/run builds the site and runs the same check directly.
"""

import importlib.util
import os
from pathlib import Path

import pytest

from tools import site, site_check
from tools.papers import PAPERS

ROOT = Path(__file__).resolve().parents[1]


def test_pages_follow_the_reading_order():
    pages = site.discover()
    slugs = [p.slug for p in pages]
    assert slugs[0] == "index" and slugs[-1] == "api", slugs
    papers = [s for s in slugs if s in PAPERS]
    assert papers == list(PAPERS), f"paper pages {papers}, tools/papers.py says {list(PAPERS)}"
    for page in pages:
        if page.slug in PAPERS:
            assert page.notebook == f"{page.slug}/tutorial.py", page
    nav = site.nav(pages)
    assert [next(iter(entry.values())) for entry in nav][:2] == ["index.md", f"{slugs[1]}.ipynb"]


def test_links_become_site_urls():
    links = site.Links(site.discover())
    text = (
        "[the layer](../common/flows.py) [`maf/`](../maf/) ![fig](figures/x.png) "
        "[`nsf.py`](nsf.py) [web](https://arxiv.org/abs/1) [here](#results) `[no](link.md)`\n"
        "```\n[inside](a/fence.md)\n```\n[gone](missing.md) [home](../README.md)\n"
    )
    figure = next(iter(sorted((ROOT / "nsf/figures").glob("*.png"))), None)
    text = text.replace("figures/x.png", f"figures/{figure.name}") if figure else text
    out = links.rewrite(text, "nsf/README.md")
    if figure:
        assert (
            f"![fig](nsf/figures/{figure.name})" in out
            and f"nsf/figures/{figure.name}" in links.assets
        )
    assert "[the layer](api.html#common.flows)" in out, out
    assert "[`maf/`](maf.html)" in out, out
    assert "[`nsf.py`](nsf/nsf.py)" in out and "nsf/nsf.py" in links.assets, out
    assert "[web](https://arxiv.org/abs/1)" in out and "[here](#results)" in out, out
    assert "`[no](link.md)`" in out and "[inside](a/fence.md)" in out, "code must stay as it is"
    assert "[home](index.html)" in out, out
    assert links.broken == ["nsf/README.md: missing.md (no such file)"], links.broken
    # in a Markdown page, MkDocs wants the other pages' sources (it makes them .html itself)
    assert "[`maf/`](maf.ipynb)" in links.rewrite("[`maf/`](maf/)", "README.md", markdown=True)


def test_notebook_headings_go_one_level_down():
    text = "# Title\n\n## 1. Part\n```\n# a comment\n```\n###### deepest stays\n"
    assert site.demote_headings(text) == (
        "## Title\n\n### 1. Part\n```\n# a comment\n```\n###### deepest stays\n"
    )


def test_math_is_counted_outside_code():
    assert site.count_math("a $x_1$ and `$y$` then $$z$$ and \\(w\\)\n```\n$no$\n```\n") == 3


def test_static_check_finds_remote_assets(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example/x.js"></script><a href="https://x">'
    )
    (tmp_path / "b.css").write_text("@font-face { src: url(https://fonts.example/f.woff2) }")
    (tmp_path / "ok.html").write_text('<script src="assets/x.js"></script>')
    bad = site_check.static_offline(tmp_path)
    assert [b.split(":")[0] for b in bad] == ["a.html", "b.css"], bad


NOTEBOOK = """# %% [markdown]
# # A test page
# %%
import matplotlib.pyplot as plt
plt.plot([0, 1], [1, 0])
plt.show()
print("cwd", __import__("os").getcwd())
# %%
{last}
"""


def test_notebooks_run_from_their_folder_keep_figures_and_fail_on_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as in CI: the build must still keep the figures
    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "tutorial.py").write_text(NOTEBOOK.format(last="x = 1"))
    nb = site.execute("paper/tutorial.py", root=tmp_path, timeout=120)
    assert site.figure_count(nb) == 1
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert f"cwd {folder}" in printed, printed
    (folder / "tutorial.py").write_text(NOTEBOOK.format(last="raise ValueError('broken cell')"))
    with pytest.raises(SystemExit, match="paper/tutorial.py raised"):
        site.execute("paper/tutorial.py", root=tmp_path, timeout=120)


def _browser_ready():
    built = Path(os.environ.get("FLOWS_SITE", ROOT / "_site"))
    if not (built / "site-manifest.json").exists():
        return None, f"no built site at {built} (python -m tools.site build --out {built})"
    if not (site_check.find(site_check.CHROMIUM) and site_check.find(site_check.DRIVER)):
        return None, "chromium or chromedriver missing (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return None, "selenium missing (pip install -r docs/requirements.txt)"
    return built, ""


def test_every_page_renders_in_chromium():
    built, reason = _browser_ready()
    if built is None:
        pytest.skip(reason)
    report = site_check.check(built, limit=600, log=lambda *a: None)
    failures = {r["page"]: r["failures"] for r in report["pages"] if r["failures"]}
    assert not report["static_remote_assets"], report["static_remote_assets"]
    assert not failures, failures
    assert len(report["pages"]) == len(site.discover())


# ---- reading the site at a 1400-pixel window (issue 27) ------------------------------------------


def test_readme_tables_list_the_papers_in_reading_order():
    """The home page's tables name the paper folders in the order tools/papers.py reads them."""
    readme = (ROOT / "README.md").read_text()
    for table in ("| folder | paper |", "| paper | command |"):
        rows = readme.split(table, 1)[1].split("\n\n", 1)[0].splitlines()
        seen = [p for row in rows for p in PAPERS if f"]({p}/README.md" in row]
        first = list(dict.fromkeys(seen))
        assert first == list(PAPERS), f"{table}: {first}, reading order {list(PAPERS)}"


def test_docstring_examples_become_code():
    from tools.griffe_doctest import fence_doctests

    text = "Text.\n>>> a = 1\n>>> a\n1\n\nAfter.\n```\n>>> kept\n```\n    >>> b\n    2\n"
    assert fence_doctests(text) == (
        "Text.\n\n```pycon\n>>> a = 1\n>>> a\n1\n```\n\nAfter.\n```\n>>> kept\n```\n"
        "\n    ```pycon\n    >>> b\n    2\n    ```\n"
    )


def _hooks():
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_become_links_to_their_full_size():
    import base64

    saved = []

    def save(ext, data):
        saved.append((ext, data))
        return f"notebook-figures/page/{len(saved)}.{ext}"

    png = base64.b64encode(b"\x89PNG fake").decode()
    html = (
        f'<p><img alt="a" src="data:image/png;base64,{png}"></p>'
        '<img src="iaf/figures/x.png"/><a href="y.html"><img src="y.png"></a>'
    )
    out = _hooks().link_images(html, save)
    assert saved == [("png", b"\x89PNG fake")]
    assert (
        '<a class="figure-full" href="notebook-figures/page/1.png" '
        'title="Open the figure at full size"><img alt="a" src="notebook-figures/page/1.png"></a>'
    ) in out, out
    assert '<a class="figure-full" href="iaf/figures/x.png"' in out, out
    assert '<a href="y.html"><img src="y.png"></a>' in out, "an image in a link stays as it is"


def _measured(**change):
    """LAYOUT_JS's measurements of a page that reads well, with ``change`` applied."""
    seen = {
        "code": [],
        "figures": [{"src": "f.png", "natural": 2000, "shown": 900, "opens": True}],
        "quotes": 0,
        "prompts": 0,
        "math": [],
        "broken": [],
        "tables": [["index.html", "intro.html", "maf.html", "iaf.html"]],
    }
    return {**seen, **change}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"code": [{"shows": 75, "longest": 100, "start": "x"}]}, "code block scrolls sideways"),
        (
            {"figures": [{"src": "f.png", "natural": 2000, "shown": 510, "opens": False}]},
            "not a link to its full size",
        ),
        ({"quotes": 26}, "nested blockquotes"),
        ({"prompts": 1}, ">>> outside code"),
        ({"math": [{"over": 34, "width": 692, "box": 658}]}, "display math overflows"),
        ({"broken": ["planar_flows/"]}, "broken inside a word"),
        ({"tables": [["index.html", "iaf.html", "maf.html"]]}, "not in reading order"),
    ],
)
def test_layout_failures_name_each_reading_problem(change, message):
    order = ["index", "intro", "maf", "iaf"]
    assert site_check.layout_failures(_measured(), order) == []
    failures = site_check.layout_failures(_measured(**change), order)
    assert len(failures) == 1 and message in failures[0], failures


# two pages as the site showed them before issue 27 and after: each reading problem, then its fix
LINE = "x = " + "1234567890" * 9 + "123456"  # 100 characters
PAGE = """<!doctype html><html><head><style>
body {{ margin: 0; font-family: sans-serif; }} article {{ width: {width}px; }}
pre {{ overflow-x: auto; font: 13px monospace; padding: 4px; }}
mjx-container {{ display: block; overflow-x: auto; }}
td code {{ word-break: {word_break}; }} td {{ width: 60px; }}
</style></head><body><article>
<pre>{line}</pre>
{figure}
{quote}
<mjx-container display="true"><span style="display: inline-block; width: {math}px">m</span>
</mjx-container>
<table><tr><td><code>planar_flows/</code></td></tr></table>
<table>{rows}</table>
</article></body></html>
"""
PNG_1600 = (  # a grey image 1600 pixels wide, 1 high
    "iVBORw0KGgoAAAANSUhEUgAABkAAAAABCAAAAACjsz2IAAAAFUlEQVR42mNoGAWjYBSMglEwCsgAACjbIC68Zc8CAAAA"
    "AElFTkSuQmCC"
)


def _fixture_page(fixed):
    width = 1100 if fixed else 510
    figure = '<img src="wide.png" style="max-width: 100%">'
    figure = f'<a href="wide.png">{figure}</a>' if fixed else figure
    quote = "<pre>&gt;&gt;&gt; f(1)\n2</pre>" if fixed else "<blockquote><blockquote><p>f(1)</p>"
    quote += "" if fixed else "</blockquote></blockquote>"
    papers = ["maf", "iaf"] if fixed else ["iaf", "maf"]
    rows = "".join(f'<tr><td><a href="{p}.html">{p}</a></td></tr>' for p in papers)
    return PAGE.format(
        width=width,
        word_break="normal" if fixed else "break-all",
        line=LINE,
        figure=figure,
        quote=quote,
        math=width - 40 if fixed else width + 200,
        rows=rows,
    )


def test_site_check_catches_the_reading_problems_in_chromium(tmp_path):
    """LAYOUT_JS in headless Chromium at 1400 pixels: the page as it was fails each check, the
    fixed page passes every one."""
    import base64

    if not (site_check.find(site_check.CHROMIUM) and site_check.find(site_check.DRIVER)):
        pytest.skip("chromium or chromedriver missing (apt-get install chromium chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium missing (pip install -r docs/requirements.txt)")
    (tmp_path / "wide.png").write_bytes(base64.b64decode(PNG_1600))
    (tmp_path / "old.html").write_text(_fixture_page(fixed=False))
    (tmp_path / "new.html").write_text(_fixture_page(fixed=True))
    server, driver = site_check.serve(tmp_path), site_check.browser()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    order = ["index", "intro", "maf", "iaf"]
    try:
        found = {}
        for name in ("old", "new"):
            driver.get(f"{base}/{name}.html")
            driver.execute_async_script(site_check.WAIT_JS)
            found[name] = site_check.layout_failures(
                driver.execute_script(site_check.LAYOUT_JS), order
            )
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    assert found["new"] == [], found["new"]
    for message in (
        "code block scrolls sideways",
        "not a link to its full size",
        "nested blockquotes",
        "display math overflows",
        "broken inside a word",
        "not in reading order",
    ):
        assert any(message in f for f in found["old"]), (message, found["old"])


# ---- the notebook exercises: the answer folded until the reader has tried ----------------------


def _exercise_html(tmp_path, fold=True, open_box=False, drop_box=False):
    """An exercise cell and its solution cell (tags as in the tutorials) as mkdocs-jupyter renders
    them for the site, folded by docs/hooks.py (or not), inside an <article> page."""
    import nbformat
    from mkdocs_jupyter.nbconvert2 import nb2html

    nb = nbformat.v4.new_notebook()
    exercise = nbformat.v4.new_code_cell("x = ...\ncheck(x)", metadata={"tags": ["exercise"]})
    exercise.outputs = [nbformat.v4.new_output("stream", text="Exercise 1 not tried yet\n")]
    solution = nbformat.v4.new_code_cell(
        "x = 41 + 1\ncheck(x)", metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}
    )
    solution.outputs = [nbformat.v4.new_output("stream", text="Exercise 1: right\n")]
    nb.cells = [exercise, solution, nbformat.v4.new_code_cell("print(x)")]
    nbformat.write(nb, tmp_path / "exercise.ipynb")
    html = nb2html(str(tmp_path / "exercise.ipynb"), custom_mathjax_url="mathjax.js")
    body = html[html.index('<div class="jp-Cell') :]  # the cells, without the page's scripts
    if fold:
        body = _hooks().fold_solutions(body)
    if open_box:
        body = body.replace('<details class="solution">', '<details class="solution" open>')
    if drop_box:
        body = body.replace('<details class="solution">', "").replace("</details>", "")
        body = body.replace("<summary>", "<p>").replace("</summary>", "</p>")
    return f"<!doctype html><html><body><article>{body}</article></body></html>"


def test_the_hook_folds_each_solution_cell_into_a_closed_box(tmp_path):
    page = _exercise_html(tmp_path)
    assert page.count('<details class="solution">') == 1 and " open" not in page
    box = page[page.index("<details") : page.index("</details>")]
    assert "celltag_solution" in box and "41" in box and "Exercise 1: right" in box
    assert "celltag_exercise" not in box and "print" not in box  # the other cells stay outside
    assert _hooks().fold_solutions("<p>no notebook</p>") == "<p>no notebook</p>"


def _folded(**change):
    """SOLUTIONS_JS's measurements of a page whose one exercise is right, with ``change``."""
    seen = {
        "exercises": [{"start": "x = ...", "shown": True, "box_after": True}],
        "solutions": [
            {
                "start": "x = 42",
                "boxed": True,
                "open": False,
                "shown": False,
                "shown_when_opened": True,
            }
        ],
    }
    for key, value in change.items():
        kind, field = key.split("__")
        seen[kind] = [{**seen[kind][0], field: value}]
    return seen


@pytest.mark.parametrize(
    "change, message",
    [
        ({"exercises__box_after": False}, "no Solution box after it"),
        ({"exercises__shown": False}, "exercise cell hidden"),
        ({"solutions__boxed": False}, "outside a Solution box"),
        ({"solutions__open": True}, "open when the page loads"),
        ({"solutions__shown": True}, "visible in a closed Solution box"),
        ({"solutions__shown_when_opened": False}, "no code once opened"),
    ],
)
def test_solution_failures_name_each_problem(change, message):
    assert site_check.solution_failures(_folded(), 1) == []
    failures = site_check.solution_failures(_folded(**change), 1)
    assert len(failures) == 1 and message in failures[0], failures
    missing = site_check.solution_failures({"exercises": [], "solutions": []}, 2)
    assert missing == ["0 exercise cells on the page, the notebook has 2"]


def test_site_check_finds_an_open_or_missing_solution_box_in_chromium(tmp_path):
    """SOLUTIONS_JS in headless Chromium: the folded page passes; a box open by default, or the
    solution cell left unboxed after its exercise, each fails."""
    if not (site_check.find(site_check.CHROMIUM) and site_check.find(site_check.DRIVER)):
        pytest.skip("chromium or chromedriver missing (apt-get install chromium chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium missing (pip install -r docs/requirements.txt)")
    pages = {
        "folded": _exercise_html(tmp_path),
        "open": _exercise_html(tmp_path, open_box=True),
        "unboxed": _exercise_html(tmp_path, drop_box=True),
        "unfolded": _exercise_html(tmp_path, fold=False),
    }
    for name, html in pages.items():
        (tmp_path / f"{name}.html").write_text(html)
    server, driver = site_check.serve(tmp_path), site_check.browser()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        found = {}
        for name in pages:
            driver.get(f"{base}/{name}.html")
            seen = driver.execute_script(site_check.SOLUTIONS_JS)
            found[name] = site_check.solution_failures(seen, 1)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    assert found["folded"] == [], found["folded"]
    assert any("open when the page loads" in f for f in found["open"]), found["open"]
    for name in ("unboxed", "unfolded"):
        assert any("no Solution box after it" in f for f in found[name]), found[name]
        assert any("outside a Solution box" in f for f in found[name]), found[name]
