"""`morphlake report` on the demo and on synthetic lakes: time, page size, and the page in headless Chromium.

Run from the repository root:  .venv/bin/python -m benchmarks.report [--sizes 20000] [--browser]

The demo lake comes from `morphlake demo`; the others are written straight as Parquet
(benchmarks/synthetic_lake.py: df02, ledger, embeddings half legacy store / half ONNX, and an ONNX
companion model for the agreement section). Each report runs as the real CLI in its own process (wall
time and peak memory); with --browser each page is opened in Chromium (Playwright, the system's browser):
the time until every chart has drawn and the console errors.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import peak_of, table


def open_in_browser(page_file: Path) -> tuple[float, int, list[str]]:
    """(seconds until every chart drew, charts, console errors) in headless Chromium, network blocked."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        start = time.perf_counter()
        page.goto(page_file.as_uri())
        charts = page.locator(".plotly-graph-div").count()
        page.wait_for_function(f"window.chartsDrawn === {charts}", timeout=120_000)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds, charts, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000", help="comma-separated snip counts of synthetic lakes")
    parser.add_argument("--browser", action="store_true", help="also open each page in headless Chromium")
    args = parser.parse_args()
    morphlake = str(Path(sys.executable).parent / "morphlake")
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-report-") as tmp:
        lakes = {"demo (60 snips)": Path(tmp) / "demo" / "lake"}
        peak_of(
            [morphlake, "demo", "--root", str(Path(tmp) / "demo" / "root"), "--lake", str(lakes["demo (60 snips)"])]
        )
        for size in (int(s) for s in args.sizes.split(",") if s):
            # written by a child: Linux carries a parent's peak RSS into the children it forks, so a big parent
            # would inflate every peak measured below
            lakes[f"synthetic {size:,} snips"] = Path(tmp) / f"s{size}" / "lake"
            peak_of(
                [sys.executable, "-m", "benchmarks.synthetic_lake", str(lakes[f"synthetic {size:,} snips"]), str(size)]
            )
        for name, lake in lakes.items():
            page_file = lake.parent / "report.html"
            wall, peak, out = peak_of([morphlake, "report", "--lake", str(lake), "-o", str(page_file)])
            compared = re.search(r"(\d+) snips compared", out).group(1)
            row = [name, wall, f"{page_file.stat().st_size / 1e6:.1f}", f"{peak:.0f}", compared]
            if args.browser:
                seconds, charts, errors = open_in_browser(page_file)
                row += [seconds, f"{charts}", f"{len(errors)}"]
            rows.append(row)
    header = ["lake", "report s", "page MB", "peak MiB", "agreement snips"]
    if args.browser:
        header += ["browser s", "charts", "console errors"]
    print(table("morphlake report (the real CLI, one process each)", header, rows))


if __name__ == "__main__":
    main()
