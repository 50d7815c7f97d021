"""MkDocs hooks of the course site (docs/mkdocs.yml): keep every page offline and its figures
readable.

nbconvert's HTML template puts a MathJax 2 loader and configuration into each notebook page; the
site loads MathJax 3 once for every page (extra_javascript), so the notebook's copy is removed; so
is its Mermaid loader, which would import Mermaid from a CDN (no notebook here draws a diagram).

Every image of a page's content becomes a link to itself, so a figure shrunk to the page's width
opens at full size on click (the layer-by-layer figures are 1600-2200 pixels wide). A notebook's
figures are inline ``data:`` URIs, which a browser will not open as a page; each is written to
``notebook-figures/<page>/<hash>.<ext>`` beside the pages and the page links to that file.

A notebook cell tagged ``solution`` (an exercise's answer, folded in Jupyter too) is wrapped in a
closed ``<details class="solution">`` box: the reader meets the exercise cell, tries it, then
opens "Solution" to see the highlighted code and its output.
"""

import base64
import hashlib
import re
from pathlib import Path

NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S
)
NBCONVERT_MERMAID = re.compile(
    r'<script type="module">(?:(?!</script>).)*?mermaid\.esm.*?</script>', re.S
)
# an <img> (to wrap in a link), or an <a> opening or closing (an image inside a link stays as is)
TAGS = re.compile(r"<img\b[^>]*>|<a\b[^>]*>|</a\s*>", re.I)
SRC = re.compile(r"""\bsrc=(["'])(.*?)\1""", re.I | re.S)
DATA = re.compile(r"data:image/(png|jpeg|gif|svg\+xml);base64,(.*)", re.S)
FIGURES = "notebook-figures"
# nbconvert writes a cell's tags as classes: <div class="jp-Cell ... celltag_solution" ...>
SOLUTION_CELL = re.compile(r"""<div\b[^>]*\bclass=(["'])[^"']*\bcelltag_solution\b[^"']*\1[^>]*>""")
DIV = re.compile(r"<div\b[^>]*>|</div\s*>", re.I)
SOLUTION_BOX = (
    '<details class="solution"><summary>Solution (open it after you have tried the exercise)'
    "</summary>"
)


def fold_solutions(html):
    """``html`` with each notebook cell tagged ``solution`` (its code and output) inside a closed
    ``<details class="solution">`` box."""
    out, last = [], 0
    for cell in SOLUTION_CELL.finditer(html):
        if cell.start() < last:
            continue  # inside the cell just wrapped (cells do not nest)
        depth, end = 0, len(html)
        for tag in DIV.finditer(html, cell.start()):
            depth += -1 if tag.group(0)[1] == "/" else 1
            if depth == 0:
                end = tag.end()
                break
        out += [html[last : cell.start()], SOLUTION_BOX, html[cell.start() : end], "</details>"]
        last = end
    return "".join(out) + html[last:]


def link_images(html, save):
    """``html`` with every image outside a link wrapped in ``<a class="figure-full">`` to its
    source; ``save(ext, data)`` stores a ``data:`` image and returns its URL (then the ``src``)."""
    out, depth, last = [], 0, 0
    for m in TAGS.finditer(html):
        tag = m.group(0)
        if tag[:2].lower() == "<a":
            depth += 1
        elif tag[:2] == "</":
            depth = max(0, depth - 1)
        elif (src := SRC.search(tag)) is not None:
            url = src.group(2)
            if (data := DATA.match(url)) is not None:
                ext = "svg" if data.group(1) == "svg+xml" else data.group(1)
                url = save(ext, base64.b64decode(re.sub(r"\s+", "", data.group(2))))
                tag = tag[: src.start(2)] + url + tag[src.end(2) :]
            if depth == 0:
                tag = (
                    f'<a class="figure-full" href="{url}" title="Open the figure at full size">'
                    f"{tag}</a>"
                )
        out += [html[last : m.start()], tag]
        last = m.end()
    return "".join(out) + html[last:]


def on_post_page(output, page, config):
    """Drop nbconvert's MathJax and Mermaid loaders; fold the solutions; link every content image
    to full size."""
    output = NBCONVERT_MERMAID.sub("", NBCONVERT_MATHJAX.sub("", output))
    stem = Path(page.file.dest_uri).with_suffix("").as_posix()
    folder = Path(config["site_dir"]) / FIGURES / stem

    def save(ext, data):
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return "../" * stem.count("/") + f"{FIGURES}/{stem}/{name}"  # relative to the page

    start, end = output.find("<article"), output.rfind("</article>")
    if start < 0 or end < start:
        return output
    article = link_images(fold_solutions(output[start:end]), save)
    return output[:start] + article + output[end:]
