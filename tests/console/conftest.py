"""Fixtures for the console's tests: Debian's chromium, driven by Playwright, against a real
localbox server. Every page records dialogs, page errors and CSP violations, so a test can
assert that nothing ran that should not have."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    BrowserType,
    Dialog,
    Page,
    sync_playwright,
)

from tests.conftest import LocalboxServer

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
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000

# Runs before the page's own script: CSP violations are kept where a test can read them.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def launch(chromium: BrowserType) -> Browser:
    """Debian's chromium: Playwright never downloads a browser here."""
    return chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@dataclass
class Console:
    """A browser tab on a server's console, and what happened in it."""

    server: LocalboxServer
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, route: str = "containers") -> Page:
        self.page.goto(f"{self.server.url}/console#/{route}")
        return self.page

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__violations || []")
        return found

    def assert_nothing_ran(self) -> None:
        """No dialog opened, no script error, no CSP violation, no element made from data."""
        assert self.dialogs == []
        assert self.errors == []
        assert self.violations() == []
        injected = self.page.evaluate(
            """() => ({
                scripts: [...document.scripts].map((s) => s.src).filter(
                    (src) => !src.endsWith("/console/static/app.js")),
                imgX: document.querySelectorAll("img[src='x'], img[src$='/x']").length,
                svg: document.querySelectorAll("svg, iframe, object, embed").length,
                handlers: [...document.querySelectorAll("*")].filter((el) =>
                    [...el.attributes].some((a) => a.name.startsWith("on"))).length,
            })"""
        )
        assert injected == {"scripts": [], "imgX": 0, "svg": 0, "handlers": 0}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One browser for the console's tests, stopped after them: Playwright's sync API holds
    an event loop in this thread while it runs, which asyncio.run() elsewhere would trip on."""
    with sync_playwright() as playwright:
        browser = launch(playwright.chromium)
        yield browser
        browser.close()


def open_console(browser: Browser, server: LocalboxServer, *, bypass_csp: bool) -> Console:
    context = browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        accept_downloads=True,
        bypass_csp=bypass_csp,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console = Console(server, context, page)

    def on_dialog(dialog: Dialog) -> None:
        console.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    return console


@pytest.fixture
def console(browser: Browser, server: LocalboxServer) -> Iterator[Console]:
    """A tab on the shared server's console, under the page's own CSP."""
    c = open_console(browser, server, bypass_csp=False)
    yield c
    c.context.close()


@pytest.fixture
def console_without_csp(browser: Browser, server: LocalboxServer) -> Iterator[Console]:
    """A tab that ignores the CSP: the page itself must not run what data holds, so the XSS
    tests prove that without the CSP's help."""
    c = open_console(browser, server, bypass_csp=True)
    yield c
    c.context.close()
