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
import bench_runtimes
import bench_start
from benchlib import ROOT, Row, table

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
RUNTIMES_START, RUNTIMES_END = "<!-- bench-runtimes:start -->", "<!-- bench-runtimes:end -->"


def replace_between(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


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
    print("==> measuring gVisor beside runc", file=sys.stderr, flush=True)
    runtimes = bench_runtimes.rows()
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}"
    note = f"Measured by `make bench` on {machine}; p50 of each case."
    text = f"{table(rows)}\n\n{note}"
    runtimes_text = f"{table(runtimes, bench_runtimes.HEADER)}\n\n{note}"
    print(f"{text}\n\n{runtimes_text}")
    if not args.no_readme:
        readme = ROOT / "README.md"
        current = replace_between(readme.read_text(), START, END, text)
        readme.write_text(replace_between(current, RUNTIMES_START, RUNTIMES_END, runtimes_text))
        print("==> README.md benchmark tables updated", file=sys.stderr)


if __name__ == "__main__":
    main()
