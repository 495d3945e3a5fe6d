"""The console's Responses view against a localbox whose model is a scripted upstream: a stored
response with its input, the model's message, a code_interpreter_call with its code, outputs
and figure, a shell_call, and the file the message cites, linked to the container."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LocalboxServer, _serve
from tests.console.conftest import Console, open_console
from tests.responses.helpers import CI_AUTO, MODEL, SHELL_AUTO, python, shell
from tests.responses.scripted_upstream import ScriptedUpstream, Turn

UPSTREAM_KEY = "sk-upstream-console"
CODE = """\
import matplotlib.pyplot as plt
with open("summary.csv", "w") as f:
    f.write("a,b\\n1,2\\n")
print("<script>alert(1)</script>")
plt.plot([1, 2, 3], [2, 3, 1])
plt.show()
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(api_key=UPSTREAM_KEY) as scripted:
        yield scripted


@pytest.fixture(scope="module")
def model_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedUpstream
) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("localbox-console-responses"),
        {
            "LOCALBOX_MODEL_BASE_URL": upstream.base_url,
            "LOCALBOX_MODEL_API_KEY": UPSTREAM_KEY,
            "LOCALBOX_MODEL_MAX_RETRIES": "0",
        },
    )


def test_a_stored_response_with_its_calls_and_cited_files(
    browser: Browser, model_server: LocalboxServer, upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    upstream.script(
        Turn(tool_calls=(python(CODE),)),
        Turn(tool_calls=(shell("echo '<i>from shell</i>'"),)),
        Turn(text="The table is in summary.csv. <img src=x onerror=alert(2)>"),
    )
    client = model_server.client(max_retries=0)
    resp = client.responses.create(
        model=MODEL, input="Summarise <b>this</b>", tools=[CI_AUTO, SHELL_AUTO]
    )
    assert resp.status == "completed"
    assert upstream.remaining() == 0
    call = resp.output[0]
    assert call.type == "code_interpreter_call"
    shell_item = resp.output[1]
    assert shell_item.type == "shell_call"
    shell_id = shell_item.environment.container_id  # type: ignore[union-attr]
    # Without the CSP: the page itself must keep the model's and the sandbox's text as text.
    console: Console = open_console(browser, model_server, bypass_csp=True)
    try:
        page = console.open("responses")
        page.locator("#response-id").fill(resp.id)
        page.get_by_role("button", name="Open").click()
        expect(page.locator("#input-items")).to_contain_text("Summarise <b>this</b>")
        out = page.locator("#output-items")
        ci = out.locator(".item.code_interpreter_call")
        expect(ci.locator("pre.source")).to_contain_text('open("summary.csv", "w")')
        expect(ci).to_contain_text("<script>alert(1)</script>")
        expect(ci.locator("img")).to_have_count(1)
        assert (ci.locator("img").get_attribute("src") or "").startswith("blob:")
        link = ci.get_by_role("link", name=call.container_id)
        assert link.get_attribute("href") == f"#/containers/{call.container_id}"
        shell_call = out.locator(".item.shell_call")
        expect(shell_call.locator("pre.source")).to_have_text("echo '<i>from shell</i>'")
        expect(shell_call.locator("a")).to_have_attribute("href", f"#/containers/{shell_id}")
        expect(out.locator(".item.shell_call_output pre.stdout")).to_have_text(
            "<i>from shell</i>\n"
        )
        message = out.locator(".item.message")
        expect(message).to_contain_text("<img src=x onerror=alert(2)>")
        with page.expect_download() as info:
            message.locator(".citations").get_by_role("button", name="summary.csv").click()
        saved = tmp_path / "summary.csv"
        info.value.save_as(saved)
        assert saved.read_bytes() == b"a,b\n1,2\n"
        # The tab remembers the ids it opened (there is no list route).
        page.get_by_role("link", name="← Responses").click()
        expect(page.locator("#known-responses")).to_contain_text(resp.id)
        # And the container link leads to the container the code ran in.
        page.goto(f"{model_server.url}/console#/responses/{resp.id}")
        page.locator("#output-items .item.code_interpreter_call a").click()
        expect(page.locator("#files")).to_contain_text("summary.csv")
        console.assert_nothing_ran()
    finally:
        console.context.close()
        for container_id in {call.container_id, shell_id}:
            client.containers.delete(container_id)
