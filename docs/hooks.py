"""MkDocs hooks of the course site (docs/mkdocs.yml): keep every page offline.

nbconvert's HTML template puts a MathJax 2 loader and configuration into each notebook page; the
site loads MathJax 3 once for every page (extra_javascript), so the notebook's copy is removed; so
is its Mermaid loader, which would import Mermaid from a CDN (no notebook here draws a diagram).
"""

import re

NBCONVERT_MATHJAX = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S
)
NBCONVERT_MERMAID = re.compile(
    r'<script type="module">(?:(?!</script>).)*?mermaid\.esm.*?</script>', re.S
)


def on_post_page(output, page, config):
    """Drop nbconvert's MathJax and Mermaid loaders from a rendered page."""
    return NBCONVERT_MERMAID.sub("", NBCONVERT_MATHJAX.sub("", output))
