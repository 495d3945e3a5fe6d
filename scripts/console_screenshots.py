"""Screenshots of the web console for the README: starts a localbox, makes a few containers,
drives Debian's chromium through the main views and writes PNGs into docs/console/."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
from benchlib import ROOT, running_localbox
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSV = "month,visits\n" + "".join(
    f"{m},{v}\n"
    for m, v in zip(
        range(1, 13), (120, 132, 101, 134, 190, 230, 210, 250, 240, 280, 300, 330), strict=True
    )
)
CELL = """\
import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv("visits.csv")
print(df.describe().loc[["mean", "max"]])
df.plot(x="month", y="visits", marker="o", figsize=(6, 3))
plt.tight_layout()
plt.show()
"""


def shoot(page: Page, out: Path, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / f"{name}.png"))
    print(f"wrote {out / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = {"LOCALBOX_WARM_POOL": "1", "LOCALBOX_WARM_IMPORTS": ""}
    with running_localbox(env) as (base_url, _):
        url = base_url.removesuffix("/v1")
        made: list[str] = []
        with httpx.Client(base_url=base_url, timeout=60) as api:
            try:
                for name, memory in (("etl-nightly", "4g"), ("notebook", "1g")):
                    made.append(
                        api.post("/containers", json={"name": name, "memory_limit": memory}).json()[
                            "id"
                        ]
                    )
                analysis = api.post("/containers", json={"name": "analysis"}).json()["id"]
                made.append(analysis)
                api.post(
                    f"/containers/{analysis}/files", files={"file": ("visits.csv", CSV.encode())}
                ).raise_for_status()
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                    )
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.goto(f"{url}/console#/containers")
                    page.locator("#containers tr[data-id]").nth(2).wait_for()
                    shoot(page, out, "containers")

                    page.goto(f"{url}/console#/containers/{analysis}")
                    page.locator("#files").get_by_role("link", name="visits.csv").click()
                    page.locator("#preview table").wait_for()
                    editor = page.locator(".cell.editing textarea")
                    editor.fill(CELL)
                    page.get_by_role("button", name="Run").click()
                    page.locator(".cell.ran .figure img").wait_for(timeout=60_000)
                    page.locator(".cell.ran .status", has_text="completed").wait_for()
                    page.evaluate("window.scrollTo(0, 0)")
                    shoot(page, out, "container")
                    page.locator(".cell.ran").scroll_into_view_if_needed()
                    page.evaluate("document.querySelector('.cell.ran').scrollIntoView()")
                    shoot(page, out, "cell")

                    page.goto(f"{url}/console#/status")
                    page.locator("#status .tile").nth(5).wait_for()
                    shoot(page, out, "status")
                    browser.close()
            finally:
                for container_id in made:
                    api.delete(f"/containers/{container_id}")


if __name__ == "__main__":
    main()
