"""Check the README's notebook instruction the way Jupyter follows it: start a Jupyter server in
the repository root and ask its contents API for a paired ``tutorial.py``, which jupytext must
serve as a notebook (cells, not a text file).

    python -m tools.check_jupyter                    # every */tutorial.py
    python -m tools.check_jupyter intro/tutorial.py  # one

Exits 1 with one line per notebook that Jupyter would not open as a notebook.
"""

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools.cli import script_parser

ROOT = Path(__file__).resolve().parent.parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_as_notebooks(paths, timeout=60, options=()):
    """{path: number of cells, or the reason it did not open}, from a server on 127.0.0.1 started
    with the extra command-line ``options``."""
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "server",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        "--allow-root",
        *options,
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {}
    try:
        for path in paths:
            url = f"http://127.0.0.1:{port}/api/contents/{path}?content=1&token={token}"
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=10) as reply:
                        model = json.load(reply)
                    break
                except OSError as error:
                    if server.poll() is not None or time.monotonic() > deadline:
                        model = {"type": f"no answer ({error})"}
                        break
                    time.sleep(0.5)
            if model.get("type") == "notebook":
                result[path] = len(model["content"]["cells"])
            else:
                result[path] = f"opened as {model.get('type')!r}, not as a notebook"
    finally:
        server.terminate()
        server.wait(10)
    return result


def main(argv=None):
    parser = script_parser(__doc__, "tools.check_jupyter")
    parser.add_argument("notebooks", nargs="*", help="paths from the root (default */tutorial.py)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(
        p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/tutorial.py")
    )
    failed = 0
    for path, cells in open_as_notebooks(paths).items():
        ok = isinstance(cells, int) and cells > 0
        failed += not ok
        print(f"{path}: {f'{cells} cells' if ok else cells}", file=sys.stdout if ok else sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
