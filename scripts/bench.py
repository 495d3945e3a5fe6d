"""`make bench`: every benchmark in one run, each figure beside raw Docker from the same run,
printed as a Markdown table and written into the README between its bench markers.

Run on a quiet machine: the figures are medians, but two cores shared with a build are not
a benchmark. `--no-readme` only prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_burst
import bench_egress
import bench_exec
import bench_files
import bench_listing
import bench_mcp
import bench_responses
import bench_start
from benchlib import ROOT, Row, table

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    image = os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")
    rows: list[Row] = []
    for name, measure in (
        ("starts", lambda: bench_start.rows(15, image)),
        ("exec", lambda: bench_exec.rows(300, 50)),
        ("mcp", lambda: bench_mcp.rows(200)),
        ("transfers", bench_files.rows),
        ("listing", bench_listing.rows),
        ("responses", bench_responses.rows),
        ("a burst of creates", lambda: bench_burst.rows(image)),
        ("an egress flood", bench_egress.rows),
    ):
        print(f"==> measuring {name}", file=sys.stderr, flush=True)
        rows += measure()
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}"
    text = f"{table(rows)}\n\nMeasured by `make bench` on {machine}; p50 of each case."
    print(text)
    if not args.no_readme:
        readme = ROOT / "README.md"
        current = readme.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        if pattern.search(current):
            readme.write_text(pattern.sub(f"{START}\n{text}\n{END}", current))
            print("==> README.md benchmark table updated", file=sys.stderr)


if __name__ == "__main__":
    main()
