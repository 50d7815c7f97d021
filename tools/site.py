"""Build the course site: the READMEs and the executed notebooks as one static website.

python -m tools.site build --out _site      # executes every notebook (FLOWS_FAST=1), then MkDocs
python -m tools.site pages                  # lists the pages it would build, in reading order

The pages are discovered at build time, in reading order: the home page (README.md), the opening
notebook (intro/, when it exists), one page per paper of tools/papers.py (its README.md, then its
tutorial.py executed from its own folder), the pages of GUIDES (the families compared), the
benchmark page (benchmarks/README.md), the instructors' page (course/README.md) and the API of
common/ (from its docstrings, by mkdocstrings).
A notebook that raises fails the build. The generator is MkDocs with the Material theme and
mkdocs-jupyter (docs/requirements.txt); the math renderer is MathJax from npm (docs/package.json),
copied into the site so that every page reads offline. docs/README.md says more.
"""

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MATHJAX = DOCS / "node_modules" / "mathjax" / "es5"
# the parts of MathJax's es5 folder the site serves: the TeX-to-HTML bundle, its fonts, the TeX
# extensions it loads on demand, the menu and the accessibility helpers (no speech engine)
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "output/chtml.js", "ui", "a11y")

LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(\s+\"[^\"]*\")?\s*\)")
HTML_SRC = re.compile(r"""(<(?:img|a)\b[^>]*?\b(?:src|href)=)(["'])([^"']+)\2""", re.I)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\s](?:[^$\n]*[^$\s])?\$|\\\(.+?\\\)|\\\[.+?\\\]", re.S)
FENCE = re.compile(r"^\s*(```|~~~)")
# pages of prose that read after the papers, in this order: (slug, Markdown source)
GUIDES = (("families", "intro/families.md"),)


@dataclass
class Page:
    """One page of the site: where its text comes from and what the build found in it."""

    slug: str  # the page is <slug>.html at the top of the site (flat, so it reads from file:// too)
    title: str
    readme: str | None = None  # repository-relative sources
    notebook: str | None = None
    section: str | None = None  # a heading of README.md, when the page is cut from the root README
    figures: int = 0  # image outputs of the executed notebook
    exercises: int = 0  # cells tagged "exercise": each is followed by a folded "solution" cell
    math: int = 0  # math expressions in the page's sources (outside code)
    seconds: float = 0.0  # notebook execution time


def _first_heading(text):
    """The first level-1 heading of a Markdown text, or None."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def _short(title):
    """A navigation label: a title up to its first colon or parenthesis."""
    return re.split(r":| \(| —", title, maxsplit=1)[0].strip()


def _notebook_title(path):
    for line in path.read_text().splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return None


def _root_section(root, pattern):
    """The level-2 section of the root README whose heading matches ``pattern`` (a fallback)."""
    readme = root / "README.md"
    if not readme.exists():
        return None
    text, out, keep = readme.read_text(), [], False
    for line in text.splitlines():
        if line.startswith("## "):
            keep = re.search(pattern, line, re.I) is not None
            if keep:
                line = "# " + line[3:]
        if keep:
            out.append(line)
    return "\n".join(out) + "\n" if out else None


def discover(root=ROOT):
    """The site's pages in reading order, from whatever exists in the repository right now."""
    sys.path.insert(0, str(root))
    from tools.papers import PAPERS

    pages = []
    if (root / "README.md").exists():
        title = _first_heading((root / "README.md").read_text()) or "Home"
        pages.append(Page("index", title, readme="README.md"))
    for folder in ("intro", *PAPERS):
        readme, notebook = root / folder / "README.md", root / folder / "tutorial.py"
        if not (readme.exists() or notebook.exists()):
            continue
        title = (readme.exists() and _first_heading(readme.read_text())) or (
            notebook.exists() and _notebook_title(notebook)
        )
        pages.append(
            Page(
                folder,
                title or folder,
                readme=f"{folder}/README.md" if readme.exists() else None,
                notebook=f"{folder}/tutorial.py" if notebook.exists() else None,
            )
        )
    for slug, path in GUIDES:
        if (root / path).exists():
            title = _first_heading((root / path).read_text()) or slug
            pages.append(Page(slug, title, readme=path))
    for slug, path, pattern, default in (
        ("benchmarks", "benchmarks/README.md", r"benchmark", "Benchmarks"),
        ("instructors", "course/README.md", r"instructor", "For instructors"),
    ):
        if (root / path).exists():
            title = _first_heading((root / path).read_text()) or default
            pages.append(Page(slug, title, readme=path))
        elif (section := _root_section(root, pattern)) is not None:
            pages.append(Page(slug, _first_heading(section), section=pattern))
    pages.append(Page("api", "API of common/"))
    if not pages[0].slug == "index":
        raise SystemExit("site: README.md is missing at the repository root (the home page)")
    return pages


def page_map(pages, root=ROOT):
    """Repository paths (files and folders) -> the page that shows them, e.g. iaf/ -> iaf.html."""
    out = {}
    for page in pages:
        url = f"{page.slug}.html"
        for source in (page.readme, page.notebook):
            if source:
                out[source] = url
                out[str(PurePosixPath(source).with_suffix(".ipynb"))] = url
                folder = str(PurePosixPath(source).parent)
                out.setdefault(folder, url)  # "." (the root) -> the home page
    for module in sorted((root / "common").glob("*.py")):
        anchor = "" if module.stem == "__init__" else f"#common.{module.stem}"
        out[f"common/{module.name}"] = f"api.html{anchor}"
    out["common"] = "api.html"
    return out


def _outside_code(text, fn):
    """Apply ``fn`` to the parts of a Markdown text outside fenced blocks and inline code spans."""
    out, in_fence, fence = [], False, ""
    for line in text.splitlines(keepends=True):
        m = FENCE.match(line)
        if m and (not in_fence or m.group(1) == fence):
            in_fence, fence = (not in_fence), m.group(1)
            out.append(line)
        elif in_fence:
            out.append(line)
        else:
            spans = []  # inline code is set aside (a link's label may be code: [`x.py`](x.py))

            def hide(m, spans=spans):
                spans.append(m.group(0))
                return f"\x00{len(spans) - 1}\x00"

            done = fn(re.sub(r"(`+)[^`]*?\1", hide, line))
            out.append(
                re.sub("\x00(\\d+)\x00", lambda m, spans=spans: spans[int(m.group(1))], done)
            )
    return "".join(out)


def demote_headings(text):
    """A Markdown text with every ATX heading one level lower (# -> ##), code left alone."""
    out, in_fence, fence = [], False, ""
    for line in text.splitlines(keepends=True):
        m = FENCE.match(line)
        if m and (not in_fence or m.group(1) == fence):
            in_fence, fence = (not in_fence), m.group(1)
        elif not in_fence and re.match(r"#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "".join(out)


def count_math(text):
    """How many math expressions ($...$, $$...$$, \\(...\\), \\[...\\]) a Markdown text has."""
    found = []
    _outside_code(text, lambda part: found.extend(MATH.findall(part)) or part)
    return len(found)


class Links:
    """Rewrites a source's relative links to what the site serves; collects the files to copy."""

    def __init__(self, pages, root=ROOT):
        self.root, self.pages = root, page_map(pages, root)
        self.assets, self.broken = set(), []
        # a Markdown page links to the other pages' MkDocs sources, a notebook cell to their HTML
        self.sources = {
            f"{p.slug}.html": f"{p.slug}.{'ipynb' if p.notebook else 'md'}" for p in pages
        }
        self.markdown = False

    def target(self, src_dir, href, source):
        """The site URL for ``href`` met in a file of ``src_dir`` (None: drop the link)."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", href, re.I) or href.startswith(("#", "//")):
            return href
        path, _, anchor = href.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        resolved = os.path.normpath(os.path.join(src_dir, path)).replace(os.sep, "/")
        resolved = resolved.rstrip("/") or "."
        if resolved.startswith(".."):
            self.broken.append(f"{source}: {href} (outside the repository)")
            return None
        if resolved in self.pages:
            url, _, own = self.pages[resolved].partition("#")
            if self.markdown:
                url = self.sources[url]
            return url + (f"#{own}" if own else anchor)
        full = self.root / resolved
        if full.is_file():
            self.assets.add(resolved)
            return resolved + anchor
        if full.is_dir():
            return None  # a folder without a page: keep the text, drop the link
        self.broken.append(f"{source}: {href} (no such file)")
        return href

    def rewrite(self, text, source, markdown=False):
        """``text`` (Markdown of the repository file ``source``) with its links made site URLs:
        MkDocs sources (``iaf.ipynb``) in a Markdown page, HTML (``iaf.html``) in a notebook cell.
        """
        src_dir, self.markdown = str(PurePosixPath(source).parent), markdown

        def markdown_link(m):
            bang, label, href, title = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            url = self.target(src_dir, href, source)
            return label if url is None else f"{bang}[{label}]({url}{title})"

        def html_link(m):
            url = self.target(src_dir, m.group(3), source)
            return f"{m.group(1)}{m.group(2)}{url or '#'}{m.group(2)}"

        return _outside_code(
            text, lambda part: HTML_SRC.sub(html_link, LINK.sub(markdown_link, part))
        )


def home_text(page, pages, links, root=ROOT):
    """The root README, with a generated reading order before its first section."""
    text = links.rewrite((root / "README.md").read_text(), "README.md", markdown=True)
    order = [
        "## Reading this site",
        "",
        "The pages in reading order (each also in the left menu):",
        "",
    ]
    for i, other in enumerate(p for p in pages if p.slug != "index"):
        what = "README and executed notebook" if other.readme and other.notebook else None
        what = what or ("executed notebook" if other.notebook else None)
        suffix = f" ({what})" if what else ""
        order.append(f"{i + 1}. [{other.title}]({links.sources[other.slug + '.html']}){suffix}")
    block = "\n".join(order) + "\n\n"
    head, sep, rest = text.partition("\n## ")
    return head.rstrip() + "\n\n" + block + (sep.lstrip("\n") + rest if sep else "")


def api_text(root=ROOT):
    """The API page: one mkdocstrings block per module of common/."""
    lines = [
        "# API of common/",
        "",
        "The shared library that every paper folder imports (and nothing else of the repository):",
        "the flow contract, networks, targets, data, training loops, metrics and plots. Generated",
        "from the docstrings by mkdocstrings; each module's source is one click away.",
        "",
    ]
    # the contract first, then what builds on it; any other module after these, by name
    first = ("flows", "nets", "targets", "data", "train", "metrics", "plot", "vae")
    stems = [m.stem for m in sorted((root / "common").glob("*.py")) if m.stem != "__init__"]
    for stem in sorted(stems, key=lambda s: (first.index(s) if s in first else len(first), s)):
        lines += [f"::: common.{stem}", ""]
    return "\n".join(lines)


def execute(notebook, root=ROOT, timeout=1200):
    """Execute a paired tutorial.py from its own folder in fast mode; return the notebook node."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = root / notebook
    nb = jupytext.read(path)
    env = dict(os.environ, FLOWS_FAST="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # keep figures (CI sets Agg)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env, cwd=str(path.parent))
    except CellExecutionError as error:
        raise SystemExit(
            f"site: {notebook} raised while executing (FLOWS_FAST=1):\n{error}"
        ) from None
    return nb


def figure_count(nb):
    """Image outputs of an executed notebook."""
    return sum(
        1
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if any(k.startswith("image/") for k in output.get("data", {}))
    )


def check_links(pages, root=ROOT):
    """Fail when a README or a notebook's Markdown links to a file that does not exist."""
    import jupytext

    links = Links(pages, root)
    for page in pages:
        if page.readme:
            links.rewrite((root / page.readme).read_text(), page.readme)
        if page.notebook:
            for cell in jupytext.read(root / page.notebook).cells:
                if cell.cell_type == "markdown":
                    links.rewrite(cell.source, page.notebook)
    if links.broken:
        raise SystemExit("site: broken links in the sources:\n  " + "\n  ".join(links.broken))


def stage(pages, src, root=ROOT, run=True, log=print):
    """Write the MkDocs sources of every page into ``src`` (executing the notebooks)."""
    import nbformat

    links = Links(pages, root)
    check_links(pages, root)  # before the notebooks run: a broken link fails in seconds
    for page in pages:
        if page.slug == "index":
            text = home_text(page, pages, links, root)
            page.math = count_math(text)
            (src / "index.md").write_text(text)
        elif page.slug == "api":
            (src / "api.md").write_text(api_text(root))
        elif page.notebook is None:
            raw = (
                (root / page.readme).read_text()
                if page.readme
                else _root_section(root, page.section)
            )
            text = links.rewrite(raw, page.readme or "README.md", markdown=True)
            page.math = count_math(text)
            (src / f"{page.slug}.md").write_text(text)
        else:
            start = time.perf_counter()
            if run:
                log(f"-- executing {page.notebook} (FLOWS_FAST=1, from {page.slug}/)")
                nb = execute(page.notebook, root)
            else:
                import jupytext

                nb = jupytext.read(root / page.notebook)
            page.seconds = round(time.perf_counter() - start, 1)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = links.rewrite(cell.source, page.notebook)
                    page.math += count_math(cell.source)
            if page.readme:
                # one title per page (the README's): the notebook's headings go one level down,
                # so its title is a section beside the README's and the contents list shows both
                for cell in nb.cells:
                    if cell.cell_type == "markdown":
                        cell.source = demote_headings(cell.source)
                readme = links.rewrite((root / page.readme).read_text(), page.readme)
                page.math += count_math(readme)
                note = (
                    f"---\n\n*Below: the notebook [`{page.notebook}`]({page.slug}.html), executed "
                    "for this page from its own folder in fast mode (`FLOWS_FAST=1`); every output "
                    "and figure is the one it printed.*"
                )
                nb.cells[:0] = [
                    nbformat.v4.new_markdown_cell(readme),
                    nbformat.v4.new_markdown_cell(note),
                ]
            page.figures = figure_count(nb)
            page.exercises = sum("exercise" in c.metadata.get("tags", ()) for c in nb.cells)
            log(f"   {page.figures} figures, {page.seconds} s")
            nbformat.write(nb, src / f"{page.slug}.ipynb")
    for asset in sorted(links.assets):
        (src / asset).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / asset, src / asset)
    if links.broken:
        raise SystemExit("site: broken links in the sources:\n  " + "\n  ".join(links.broken))
    assets = src / "assets"
    shutil.copytree(DOCS / "assets", assets, dirs_exist_ok=True)
    if not (MATHJAX / "tex-chtml.js").exists():
        raise SystemExit(f"site: MathJax is missing ({MATHJAX}); run `npm ci --prefix docs`")
    # the served copy of what npm installed (docs/package.json)
    shim = DOCS / "node_modules" / "iframe-worker" / "shim" / "index.js"
    (assets / "iframe-worker").mkdir(exist_ok=True)
    shutil.copy2(shim, assets / "iframe-worker" / "shim.js")
    for part in MATHJAX_PARTS:
        source, dest = MATHJAX / part, assets / "mathjax" / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, dest)


def nav(pages):
    """MkDocs navigation in reading order: each entry ``{label: file}``."""
    out = []
    for i, page in enumerate(pages):
        name = f"{page.slug}.ipynb" if page.notebook else f"{page.slug}.md"
        label = "Home" if page.slug == "index" else _short(page.title)
        if page.slug in ("intro", *_papers(), *(slug for slug, _ in GUIDES)):
            label = f"{i}. {label}"
        out.append({label: name})
    return out


def _papers():
    from tools.papers import PAPERS

    return PAPERS


class _Warnings(logging.Handler):
    """Collects MkDocs' warnings: those about pages, links and cross-references (autorefs) fail the
    build, the rest are shown."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.fatal, self.others = [], []

    def emit(self, record):
        names = ("mkdocs.structure", "mkdocs.commands", "mkdocs.config")
        autorefs = "autorefs" in record.name or record.getMessage().startswith("mkdocs_autorefs")
        fatal = record.name.startswith(names) or autorefs
        (self.fatal if fatal else self.others).append(record.getMessage())


def build(out, run=True, log=print):
    """Build the site into ``out``; return the pages (with their counts) and the timings."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    start = time.perf_counter()
    out = Path(out).resolve()
    src = out.with_name(out.name + "-src")
    for folder in (out, src):
        if folder.exists():
            shutil.rmtree(folder)
    src.mkdir(parents=True)
    pages = discover()
    stage(pages, src, run=run, log=log)
    executed = time.perf_counter()
    log("-- mkdocs build")
    config = load_config(
        config_file=str(DOCS / "mkdocs.yml"), docs_dir=str(src), site_dir=str(out), nav=nav(pages)
    )
    warnings = _Warnings()
    logging.getLogger("mkdocs").addHandler(warnings)
    try:
        mkdocs_build(config)
    except Abort:  # MkDocs logs its error and aborts; without this, the build would end silently
        raise SystemExit(
            "site: MkDocs aborted:\n  " + "\n  ".join(warnings.fatal + warnings.others)
        ) from None
    finally:
        logging.getLogger("mkdocs").removeHandler(warnings)
    for record in warnings.others:
        log(f"   warning (not fatal): {record}")
    if warnings.fatal:
        raise SystemExit(
            "site: MkDocs found broken links or pages:\n  " + "\n  ".join(warnings.fatal)
        )
    total = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    manifest = {
        "pages": [asdict(page) for page in pages],
        "seconds": {"notebooks": round(executed - start, 1), "total": round(total, 1)},
        "bytes": size,
        "fast_mode": run,
    }
    (out / "site-manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(
        f"site: {len(pages)} pages in {out}, {size / 2**20:.1f} MiB, built in {total:.0f} s "
        f"({executed - start:.0f} s executing notebooks)"
    )
    return manifest


def check_out(parser, out):
    """--out: a folder this build may replace (with its sibling ``<out>-src``), not a file, not the
    repository or a folder above it; an argparse error before any work otherwise."""
    if not out.strip():
        parser.error(f"--out must name a folder, got {out!r}")
    path = Path(out).resolve()
    for folder in (path, path.with_name(path.name + "-src")):
        if folder.exists() and not folder.is_dir():
            parser.error(f"--out {out!r}: {folder} is an existing file; give a folder")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        parser.error(f"--out {out!r} cannot be created: {parent} is not a folder")
    if path == ROOT or path in ROOT.parents:
        parser.error(f"--out {out!r} would replace the repository; give a folder of its own")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.site", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute the notebooks and build the site")
    b.add_argument("--out", default="_site", help="output folder (default: _site)")
    b.add_argument(
        "--no-execute",
        action="store_true",
        help="render the notebooks without running them (a quick look at the layout only)",
    )
    sub.add_parser("pages", help="list the pages in reading order")
    args = parser.parse_args(argv)
    if args.command == "build":
        check_out(parser, args.out)
    if args.command == "pages":
        for page in discover():
            sources = ", ".join(s for s in (page.readme, page.notebook) if s) or "generated"
            print(f"{page.slug}.html\t{page.title}\t({sources})")
        return
    build(args.out, run=not args.no_execute)


if __name__ == "__main__":
    main()
