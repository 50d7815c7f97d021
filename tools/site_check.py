"""Open every page of the built course site in a real browser (Debian's Chromium); check it renders.

python -m tools.site_check _site           # after python -m tools.site build --out _site

The site is served from 127.0.0.1 only (a port the system picks), and Chromium resolves no other
host, so a page that needed the network would show it. Per page it checks:

1. the page answers HTTP 200;
2. the browser console has no error (level SEVERE);
3. the page fetched nothing from another origin (the Resource Timing entries), and no file of the
   site names an http(s) script, stylesheet or font;
4. every image has loaded with a non-zero natural width, and there are at least as many as the
   executed notebook had figures (from the build's site-manifest.json);
5. the math is typeset: MathJax containers are present where the sources have math, no raw
   ``$...$`` or ``\\(`` is left in the text outside code, and no MathJax error box;
6. every link to a page or file of the site answers HTTP 200, and the footer's previous and next
   links follow the reading order;
7. the page reads at a 1400-pixel window (issue 27): no code block scrolls sideways unless its
   lines are over 100 characters; every figure is shown at its natural width or is a link to the
   image at full size; docstring examples (``>>>``) are code, not nested quotes; display math fits
   its box; no name in a table cell is broken inside a word; a table that lists the papers lists
   them in reading order;
8. the exercises of a notebook page are there and their answers folded: every exercise cell (as
   many as the notebook has) is shown and followed by a "Solution" box, closed when the page
   loads, whose code is hidden until it is opened and shown once it is; no solution cell is
   outside such a box;
9. a screenshot of the top of the page (and, on a notebook page, of its first figure) goes to
   <site>/screenshots/.

Exits 1 when a check fails; writes <site>/site-check.json. Needs chromium and chromium-driver
(apt-get install chromium chromium-driver) and selenium (docs/requirements.txt).
"""

import argparse
import functools
import http.server
import json
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
REMOTE_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)=[\"']?(?:https?:)?//", re.I
)
REMOTE_CSS = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])(?:https?:)?//", re.I)
RAW_MATH = re.compile(r"\$\$?[^$\s][^$\n]{0,200}?\$|\\\(|\\\[")

WAIT_JS = """
const done = arguments[arguments.length - 1];
const images = [...document.images].map(img => img.complete ? Promise.resolve() :
    new Promise(ok => { img.addEventListener('load', ok); img.addEventListener('error', ok); }));
const math = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
Promise.all([...images, math]).then(() => done(true), e => done(String(e)));
"""

INSPECT_JS = """
const origin = location.origin;
const text = (() => {
  const body = document.querySelector('article') || document.body;
  const copy = body.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .jp-OutputArea')
      .forEach(e => e.remove());
  return copy.innerText;
})();
const foot = sel => { const a = document.querySelector(sel); return a ? a.href : null; };
return {
  images: [...document.images].map(i => ({src: i.src.slice(0, 80), w: i.naturalWidth})),
  math: document.querySelectorAll('mjx-container').length,
  merror: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
  text: text,
  links: [...document.querySelectorAll('a[href]')].map(a => a.href)
      .filter(h => h.startsWith(origin)),
  foreign: performance.getEntriesByType('resource').map(r => r.name)
      .filter(n => !n.startsWith(origin) && !n.startsWith('data:') && !n.startsWith('blob:')),
  prev: foot('a.md-footer__link--prev'),
  next: foot('a.md-footer__link--next'),
  first_figure: !!document.querySelector('.jp-OutputArea-output img'),
};
"""


# what each page's layout measures (check 7); layout_failures() turns it into failures
LAYOUT_JS = """
const art = document.querySelector('article') || document.body;
const right = art.getBoundingClientRect().right;
const px = (e, p) => parseFloat(getComputedStyle(e)[p]) || 0;
const code = [];  // every scrolling code box: how many characters it shows, its longest line
for (const e of art.querySelectorAll('pre, pre > code')) {
  if (e.scrollWidth <= e.clientWidth + 1 || getComputedStyle(e).overflowX === 'visible') continue;
  if (!e.getClientRects().length || e.closest('details:not([open])')) continue;  // not shown
  const probe = document.createElement('span');
  probe.textContent = '0'.repeat(100);
  probe.style.whiteSpace = 'pre';
  e.appendChild(probe);
  const char = probe.getBoundingClientRect().width / 100;
  probe.remove();
  const inner = e.clientWidth - px(e, 'paddingLeft') - px(e, 'paddingRight');
  const longest = Math.max(...e.innerText.split('\\n').map(l => l.length));
  code.push({shows: Math.floor(inner / char), longest: longest,
             start: e.innerText.trim().split('\\n')[0].slice(0, 60)});
}
const figures = [...art.querySelectorAll('img')].filter(i => i.naturalWidth >= 64).map(i => {
  const a = i.closest('a[href]');
  return {src: i.currentSrc.startsWith('data:') ? 'data:' : i.currentSrc.split('/').pop(),
          natural: i.naturalWidth, shown: Math.round(i.getBoundingClientRect().width),
          opens: !!a && a.href.split('#')[0] === i.currentSrc && !a.href.startsWith('data:')};
});
const quotes = art.querySelectorAll('blockquote blockquote').length;
const prompts = [...art.querySelectorAll('p, li, blockquote')]
    .filter(e => /^\\s*>>>/m.test(e.innerText) && !e.closest('pre, code')).length;
const math = [...art.querySelectorAll('mjx-container[display="true"]')].map(m => ({
  over: Math.max(m.scrollWidth - m.clientWidth, m.getBoundingClientRect().right - right),
  width: m.scrollWidth, box: m.clientWidth})).filter(m => m.over > 1);
const broken = [];  // a name in a table cell's code split inside a word (planar_flow|s/)
for (const c of art.querySelectorAll('td code, th code')) {
  const node = c.firstChild;
  if (!node || node.nodeType !== 3) continue;
  const text = node.textContent, r = document.createRange();
  let top = null;
  for (let i = 0; i < text.length; i++) {
    r.setStart(node, i); r.setEnd(node, i + 1);
    const rect = r.getBoundingClientRect();
    if (/\\s/.test(text[i]) || !rect.height) continue;
    if (top !== null && rect.top > top + 2 && /^\\w\\w$/.test(text[i - 1] + text[i])) {
      broken.push(text.slice(0, 60));
      break;
    }
    top = rect.top;
  }
}
const tables = [...art.querySelectorAll('table')].map(t => [...t.querySelectorAll('tr')]
    .map(tr => { const a = tr.querySelector('a[href]');
                 return a ? a.href.split('#')[0].split('/').pop() : null; })
    .filter(Boolean));
return {code, figures, quotes, prompts, math, broken, tables};
"""

# the notebook exercises and their folded solutions (check 8); solution_failures() reads it
SOLUTIONS_JS = """
const art = document.querySelector('article') || document.body;
const visible = e => e.getClientRects().length > 0 && e.getBoundingClientRect().height > 0 &&
    (!e.checkVisibility || e.checkVisibility({visibilityProperty: true}));
const code = cell => cell.querySelector('pre') || cell;
// mkdocs-jupyter wraps nbconvert's cell <div> in another with the same classes: the outer one
const cells = tag => [...art.querySelectorAll(`.celltag_${tag}`)]
    .filter(cell => !cell.parentElement.closest(`.celltag_${tag}`));
const exercises = cells('exercise').map(cell => {
  const next = cell.nextElementSibling;
  return {start: code(cell).innerText.trim().split('\\n')[0].slice(0, 60),
          shown: visible(code(cell)), box_after: !!next && next.matches('details.solution')};
});
const solutions = cells('solution').map(cell => {
  const box = cell.closest('details.solution');
  const record = {start: code(cell).textContent.trim().split('\\n')[0].slice(0, 60),
                  boxed: !!box, open: !!box && box.open, shown: visible(code(cell))};
  if (box && !box.open) {  // open it as a reader would, look, and close it again
    box.open = true;
    record.shown_when_opened = visible(code(cell));
    box.open = false;
  }
  return record;
});
return {exercises, solutions};
"""


def solution_failures(seen, expected):
    """The problems (check 8) in a page's SOLUTIONS_JS measurements; ``expected`` = the exercise
    cells of its notebook (site-manifest.json)."""
    out = []
    exercises, solutions = seen["exercises"], seen["solutions"]
    if len(exercises) < expected:
        out.append(f"{len(exercises)} exercise cells on the page, the notebook has {expected}")
    for cell in exercises:
        if not cell["shown"]:
            out.append(f"exercise cell hidden: {cell['start']!r}")
        if not cell["box_after"]:
            out.append(f"exercise cell with no Solution box after it: {cell['start']!r}")
    for cell in solutions:
        if not cell["boxed"]:
            out.append(f"solution shown outside a Solution box: {cell['start']!r}")
        elif cell["open"]:
            out.append(f"Solution box open when the page loads: {cell['start']!r}")
        elif cell["shown"]:
            out.append(f"solution code visible in a closed Solution box: {cell['start']!r}")
        elif not cell.get("shown_when_opened"):
            out.append(f"Solution box shows no code once opened: {cell['start']!r}")
    return out


def layout_failures(seen, order):
    """The reading problems (check 7) in a page's LAYOUT_JS measurements; ``order`` = the pages'
    slugs in reading order."""
    out = []
    for box in seen["code"]:
        if box["shows"] < 100:
            out.append(
                f"code block scrolls sideways: shows {box['shows']} of its "
                f"{box['longest']}-character lines (100 must fit): {box['start']!r}"
            )
    for fig in seen["figures"]:
        if fig["shown"] < fig["natural"] - 1 and not fig["opens"]:
            out.append(
                f"figure {fig['src'][:60]} shown {fig['shown']} of its {fig['natural']} pixels "
                "wide and not a link to its full size"
            )
    if seen["quotes"]:
        out.append(f"{seen['quotes']} nested blockquotes (a >>> docstring example read as quotes)")
    if seen["prompts"]:
        out.append(f"{seen['prompts']} paragraphs with >>> outside code (examples must be code)")
    for math in seen["math"]:
        out.append(f"display math overflows its box: {math['width']} pixels wide in {math['box']}")
    for word in seen["broken"]:
        out.append(f"{word!r} broken inside a word in a table cell")
    rank = {f"{slug}.html": i for i, slug in enumerate(order)}
    for table in seen["tables"]:
        pages = list(dict.fromkeys(rank[name] for name in table if name in rank))  # first rows
        if len(pages) >= 2 and pages != sorted(pages):
            names = [order[i] for i in pages]
            out.append(f"a table lists the pages {names}, not in reading order")
    return out


def find(names):
    """The first of ``names`` on PATH, or None."""
    return next((path for name in names if (path := shutil.which(name))), None)


def static_offline(site):
    """Files of the site that name a remote script, stylesheet, image or font."""
    bad = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css") or "mathjax" in path.parts:
            continue
        text = path.read_text(errors="replace")
        pattern = REMOTE_ASSET if path.suffix == ".html" else REMOTE_CSS
        bad += [f"{path.relative_to(site)}: {m.group(0)[:100]}" for m in pattern.finditer(text)]
    return bad


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the browser left a page early
            super().handle_error(request, client_address)


def serve(site):
    """A server for ``site`` on 127.0.0.1 (a free port), in a daemon thread; returns it."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def status(url, cache):
    """The HTTP status of a URL of the local site (cached)."""
    url = url.split("#")[0]
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                cache[url] = response.status
        except urllib.error.HTTPError as error:
            cache[url] = error.code
    return cache[url]


def browser(window=(1400, 900)):
    """Headless Chromium through chromedriver, resolving no host but 127.0.0.1."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={window[0]},{window[1]}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline but for the site
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(find(DRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def check_page(driver, base, page, order, shots, cache):
    """Open one page and return its record: what was measured and the failures."""
    url = f"{base}/{page['slug']}.html"
    failures, record = [], {"page": f"{page['slug']}.html", "title": page["title"]}
    record["http"] = status(url, cache)
    if record["http"] != 200:
        failures.append(f"HTTP {record['http']}")
    start = time.perf_counter()
    driver.get(url)
    waited = driver.execute_async_script(WAIT_JS)
    if waited is not True:
        failures.append(f"waiting for images and MathJax: {waited}")
    seen = driver.execute_script(INSPECT_JS)
    record["seconds"] = round(time.perf_counter() - start, 2)

    errors = [e["message"][:200] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    record["console_errors"] = errors
    failures += [f"console: {e}" for e in errors]

    record["foreign_requests"] = seen["foreign"]
    failures += [f"fetched from outside the site: {u}" for u in seen["foreign"]]

    broken = [i["src"] for i in seen["images"] if i["w"] == 0]
    record["images"] = len(seen["images"])
    record["images_loaded"] = len(seen["images"]) - len(broken)
    record["figures_expected"] = page["figures"]
    failures += [f"image did not load: {src}" for src in broken]
    if record["images_loaded"] < page["figures"]:
        failures.append(
            f"{record['images_loaded']} images loaded, the notebook had {page['figures']}"
        )

    raw = RAW_MATH.findall(seen["text"])
    record.update(math_source=page["math"], math_typeset=seen["math"], raw_math=raw[:5])
    record["math_errors"] = seen["merror"]
    if page["math"] and not seen["math"]:
        failures.append(f"no typeset math, the sources have {page['math']} expressions")
    if raw:
        failures.append(f"raw math left in the text: {raw[:3]}")
    if seen["merror"]:
        failures.append(f"{seen['merror']} MathJax errors")

    links = sorted({link.split("#")[0] for link in seen["links"]})
    bad = [f"{link} -> {status(link, cache)}" for link in links if status(link, cache) != 200]
    record["links_checked"] = len(links)
    failures += [f"link: {b}" for b in bad]
    i = order.index(page["slug"])
    for side, j in (("prev", i - 1), ("next", i + 1)):
        want = f"{base}/{order[j]}.html" if 0 <= j < len(order) else None
        got = seen[side] and seen[side].split("#")[0]
        record[f"footer_{side}"] = got and got.rsplit("/", 1)[-1]
        if got != want:
            failures.append(f"footer {side} link is {got}, the reading order says {want}")

    layout = driver.execute_script(LAYOUT_JS)
    record["code_scrolling"] = len(layout["code"])
    record["figures_shrunk"] = sum(f["shown"] < f["natural"] - 1 for f in layout["figures"])
    failures += layout_failures(layout, order)
    folded = driver.execute_script(SOLUTIONS_JS)
    record["exercises"] = len(folded["exercises"])
    record["solutions_folded"] = sum(s["boxed"] and not s["open"] for s in folded["solutions"])
    failures += solution_failures(folded, page.get("exercises", 0))

    shot = shots / f"{page['slug']}.png"
    driver.save_screenshot(str(shot))
    record["screenshots"] = [shot.name]
    if seen["first_figure"]:
        driver.execute_script(
            "document.querySelector('.jp-OutputArea-output img').scrollIntoView({block: 'center'})"
        )
        time.sleep(0.2)
        shot = shots / f"{page['slug']}-figure.png"
        driver.save_screenshot(str(shot))
        record["screenshots"].append(shot.name)
    record["failures"] = failures
    return record


def check(site, limit=900, log=print):
    """Check every page of the built ``site``; return the report (a dict)."""
    site = Path(site).resolve()
    manifest = json.loads((site / "site-manifest.json").read_text())
    pages, order = manifest["pages"], [p["slug"] for p in manifest["pages"]]
    shots = site / "screenshots"
    shots.mkdir(exist_ok=True)
    report = {"static_remote_assets": static_offline(site), "pages": []}
    # bounded: a watchdog ends the whole check (browser and server) if it runs past ``limit``
    timer = threading.Timer(limit, lambda: (log(f"site_check: over {limit} s"), _exit(3)))
    timer.daemon = True
    timer.start()
    server, driver = serve(site), None
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        driver = browser()
        cache = {}
        for page in pages:
            record = check_page(driver, base, page, order, shots, cache)
            report["pages"].append(record)
            verdict = "ok" if not record["failures"] else "FAILED"
            log(
                f"{verdict:6} {record['page']:18} {record['seconds']:5.1f} s  images "
                f"{record['images_loaded']}/{record['images']} "
                f"(figures {record['figures_expected']})"
                f"  math {record['math_typeset']} typeset ({record['math_source']} in sources)  "
                f"links {record['links_checked']}  console errors {len(record['console_errors'])}"
            )
            for failure in record["failures"]:
                log(f"       - {failure}")
        report["urls_checked"] = len(cache)
    finally:
        timer.cancel()
        if driver is not None:
            driver.quit()
        server.shutdown()
        server.server_close()
    for bad in report["static_remote_assets"]:
        log(f"FAILED remote asset in the site: {bad}")
    report["failed"] = bool(report["static_remote_assets"]) or any(
        r["failures"] for r in report["pages"]
    )
    (site / "site-check.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _exit(code):
    import os

    os._exit(code)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.site_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("site", nargs="?", default="_site", help="the built site (default: _site)")
    parser.add_argument("--limit", type=float, default=900, help="seconds before it gives up")
    args = parser.parse_args(argv)
    missing = [
        what
        for what, names in (("chromium", CHROMIUM), ("chromedriver", DRIVER))
        if not find(names)
    ]
    if missing:
        sys.exit(
            f"site_check: {' and '.join(missing)} not found "
            "(apt-get install chromium chromium-driver)"
        )
    if not (Path(args.site) / "site-manifest.json").exists():
        sys.exit(
            f"site_check: no site-manifest.json in {args.site}: "
            "build it with python -m tools.site build"
        )
    report = check(args.site, args.limit)
    n = len(report["pages"])
    print(
        f"site_check: {n} pages, {report['urls_checked']} URLs, "
        + ("FAILED" if report["failed"] else "all passed")
    )
    sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
