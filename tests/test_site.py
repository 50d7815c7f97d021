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
