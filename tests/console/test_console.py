"""The web console in a real browser (Debian's chromium through Playwright) against a real
localbox with real sandboxes: containers, files, cells, Files API, skills, status, keys."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import httpx
import openai
from playwright.sync_api import Page, expect

from tests.conftest import LocalboxServer
from tests.console.conftest import Console, open_console

CSV = b"x,y\n1,3\n2,1\n3,4\n4,1\n5,5\n"
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
PLOT = """\
import time
import pandas as pd
import matplotlib.pyplot as plt
print("reading", flush=True)
time.sleep(1.5)
df = pd.read_csv("data.csv")
print(df["y"].sum())
df.plot(x="x", y="y")
plt.savefig("plot.png")
plt.show()
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_in_page(page: Page, name: str) -> str:
    form = page.locator("#create-container")
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=memory_limit]").select_option("1g")
    form.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console#/containers/cntr_*")
    return page.url.rsplit("/", 1)[1]


def run_cell(page: Page, code: str, language: str = "python") -> None:
    editor = page.locator(".cell.editing")
    editor.locator("select.language").select_option(language)
    editor.locator("textarea").fill(code)
    editor.get_by_role("button", name="Run").click()


def test_a_container_from_create_to_delete(
    console: Console, client: openai.OpenAI, tmp_path: Path
) -> None:
    page = console.open()
    name = unique("console")
    container_id = create_in_page(page, name)
    assert client.containers.retrieve(container_id).name == name
    expect(page.locator("h1")).to_have_text(name)

    # Upload by picking, and by dropping.
    page.locator("#upload").set_input_files(
        files=[{"name": "data.csv", "mimeType": "text/csv", "buffer": CSV}]
    )
    expect(page.locator("#files tr[data-path='/mnt/data/data.csv']")).to_be_visible()
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["dropped text"], "notes.txt", {type: "text/plain"}));
            document.querySelector("#dropzone").dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    expect(page.locator("#files tr[data-path='/mnt/data/notes.txt']")).to_be_visible()
    paths = {f.path for f in client.containers.files.list(container_id)}
    assert {"/mnt/data/data.csv", "/mnt/data/notes.txt"} <= paths

    # The CSV previews as a table.
    page.locator("#files").get_by_role("link", name="data.csv").click()
    table = page.locator("#preview table.csv")
    expect(table.locator("th")).to_have_text(["x", "y"])
    expect(table.locator("tbody tr")).to_have_count(5)

    # A cell that plots it: output streams in before the call ends, then the figure.
    run_cell(page, PLOT)
    cell = page.locator(".cell.ran").last
    expect(cell.locator("pre.stdout")).to_contain_text("reading")
    expect(cell).to_have_class("cell ran running")  # still running: that was streamed
    expect(cell.locator(".status")).to_contain_text("completed", timeout=60_000)
    expect(cell.locator("pre.stdout")).to_contain_text("14")
    figure = cell.locator(".figure img")
    expect(figure).to_have_count(1)
    assert figure.get_attribute("src", timeout=1000).startswith("blob:")  # type: ignore[union-attr]
    assert figure.evaluate("img => img.complete && img.naturalWidth > 100")

    # An error is a traceback; the earlier cells stay.
    run_cell(page, "def f():\n    return 1 / 0\nf()")
    failing = page.locator(".cell.ran").last
    expect(failing.locator("pre.traceback")).to_contain_text("ZeroDivisionError")
    expect(failing.locator("pre.traceback")).not_to_contain_text("\x1b[")
    run_cell(page, "echo from bash; exit 3", "bash")
    expect(page.locator(".cell.ran").last.locator(".status")).to_contain_text("exit 3")
    expect(page.locator(".cell.ran")).to_have_count(3)
    page.get_by_role("link", name="← Containers").click()
    page.locator(f"#containers tr[data-id='{container_id}'] a").click()
    expect(page.locator(".cell.ran")).to_have_count(3)

    # The figure the code saved is listed; it downloads as the same bytes.
    row = page.locator("#files tr[data-path='/mnt/data/plot.png']")
    expect(row).to_be_visible()
    with page.expect_download() as info:
        row.get_by_role("button", name="Download").click()
    download = info.value
    assert download.suggested_filename == "plot.png"
    saved = tmp_path / "plot.png"
    download.save_as(saved)
    file_id = next(
        f.id for f in client.containers.files.list(container_id) if f.path.endswith("plot.png")
    )
    assert (
        saved.read_bytes()
        == client.containers.files.content.retrieve(file_id, container_id=container_id).read()
    )

    # Delete a file, then the container (each asks for a second click, never a dialog).
    notes = page.locator("#files tr[data-path='/mnt/data/notes.txt']")
    notes.get_by_role("button", name="Delete").click()
    notes.get_by_role("button", name="Confirm").click()
    expect(notes).to_have_count(0)
    page.get_by_role("button", name="Delete container").click()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/console#/containers")
    expect(page.locator(f"#containers tr[data-id='{container_id}']")).to_have_count(0)
    try:
        status = client.containers.retrieve(container_id).status
    except openai.NotFoundError:
        status = "deleted"
    assert status == "deleted"
    console.assert_nothing_ran()


def test_the_list_refreshes_by_itself(console: Console, client: openai.OpenAI) -> None:
    page = console.open()
    expect(page.locator("#containers")).to_be_visible()
    name = unique("made-elsewhere")
    c = client.containers.create(name=name)
    try:
        row = page.locator(f"#containers tr[data-id='{c.id}']")
        expect(row).to_be_visible(timeout=15_000)  # no reload: the list refreshed itself
        expect(row).to_contain_text(name)
        expect(row).to_contain_text("running")
        expect(row.locator("td").nth(6)).to_contain_text("min")  # time to expiry
    finally:
        client.containers.delete(c.id)
    console.assert_nothing_ran()


# XSS: run without the page's CSP, so what is proven is that the page never turns data into
# markup, not that the CSP blocked it.


def test_a_file_name_with_markup_stays_text(
    console_without_csp: Console, client: openai.OpenAI
) -> None:
    c = client.containers.create(name=unique("<b>xss</b>"))
    try:
        page = console_without_csp.open(f"containers/{c.id}")
        evil = "<img src=x onerror=alert(1)>.png"
        page.locator("#upload").set_input_files(
            files=[{"name": evil, "mimeType": "image/png", "buffer": PNG_1PX}]
        )
        link = page.locator("#files").get_by_role("link", name=evil)
        expect(link).to_be_visible()
        link.click()
        expect(page.locator("#preview h3")).to_have_text(evil)
        expect(page.locator("#preview img")).to_have_count(1)
        page.get_by_role("link", name="← Containers").click()
        expect(page.locator(f"#containers tr[data-id='{c.id}']")).to_contain_text("<b>xss</b>")
        page.wait_for_timeout(500)
        console_without_csp.assert_nothing_ran()
    finally:
        client.containers.delete(c.id)


def test_exec_output_with_markup_stays_text(
    console_without_csp: Console, client: openai.OpenAI
) -> None:
    c = client.containers.create(name=unique("xss-output"))
    try:
        page = console_without_csp.open(f"containers/{c.id}")
        run_cell(
            page,
            "import sys\nprint('<script>alert(1)</script>')\n"
            "print('<img src=x onerror=alert(2)>', file=sys.stderr)\n"
            "raise ValueError('<svg onload=alert(3)>')",
        )
        cell = page.locator(".cell.ran").last
        expect(cell.locator(".status")).to_contain_text("error")
        expect(cell.locator("pre.stdout")).to_have_text("<script>alert(1)</script>\n")
        expect(cell.locator("pre.stderr")).to_contain_text("<img src=x onerror=alert(2)>")
        expect(cell.locator("pre.traceback")).to_contain_text("ValueError: <svg onload=alert(3)>")
        page.wait_for_timeout(500)
        console_without_csp.assert_nothing_ran()
    finally:
        client.containers.delete(c.id)


SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40" onload="alert(1)">
<script>alert(2)</script><rect width="80" height="40" fill="teal"/>
<image href="x" onerror="alert(3)"/></svg>"""


def test_an_svg_with_script_is_shown_only_as_an_image(
    console_without_csp: Console, client: openai.OpenAI
) -> None:
    c = client.containers.create(name=unique("xss-svg"))
    try:
        page = console_without_csp.open(f"containers/{c.id}")
        page.locator("#upload").set_input_files(
            files=[{"name": "evil.svg", "mimeType": "image/svg+xml", "buffer": SVG}]
        )
        page.locator("#files").get_by_role("link", name="evil.svg").click()
        img = page.locator("#preview img")
        expect(img).to_have_count(1)
        assert (img.get_attribute("src") or "").startswith("blob:")
        page.wait_for_function("document.querySelector('#preview img').complete")
        page.wait_for_timeout(500)
        console_without_csp.assert_nothing_ran()
        # A figure of another type from exec output is not shown at all.
        run_cell(
            page,
            "from IPython.display import display, SVG\n"
            'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(4)"/>\'))',
        )
        expect(page.locator(".cell.ran").last.locator(".status")).to_contain_text("completed")
        assert page.locator(".cell.ran svg").count() == 0
        console_without_csp.assert_nothing_ran()
    finally:
        client.containers.delete(c.id)


def test_the_console_asks_for_the_key_and_keeps_it_in_the_tab(
    browser: object, keyed_server: LocalboxServer
) -> None:
    console = open_console(browser, keyed_server, bypass_csp=False)  # type: ignore[arg-type]
    try:
        page = console.open()
        expect(page.locator("#notice")).to_contain_text("API key")
        key_field = page.locator("#api-key")
        assert key_field.get_attribute("type") == "password"
        key_field.fill(keyed_server.api_key)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#notice")).to_be_hidden()
        expect(page.locator("#containers tbody tr").first).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('localbox.apiKey')") == keyed_server.api_key
        assert page.evaluate("localStorage.length") == 0
        assert console.context.cookies() == []
        assert key_field.input_value() == ""  # not left in the field either
        # It lasts for the tab (a reload), and the page works with it: a container made here.
        page.reload()
        container_id = create_in_page(page, unique("keyed"))
        keyed = keyed_server.client(max_retries=0)
        assert keyed.containers.retrieve(container_id).status == "running"
        keyed.containers.delete(container_id)
        # Another tab of the same browser profile does not have it.
        other = console.context.new_page()
        other.goto(f"{keyed_server.url}/console")
        assert other.evaluate("sessionStorage.getItem('localbox.apiKey')") is None
        expect(other.locator("#notice")).to_contain_text("API key")
        # A wrong key is refused and said so.
        page.get_by_role("button", name="Forget").click()
        key_field.fill("sk-wrong-key")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#notice")).to_contain_text("Incorrect API key")
        console.assert_nothing_ran()
    finally:
        console.context.close()


def test_status_shows_the_servers_own_figures(console: Console, server: LocalboxServer) -> None:
    page = console.open("status")
    tiles = page.locator("#status .tile")
    expect(tiles).to_have_count(6)
    metrics = httpx.get(f"{server.url}/metrics").text
    pool_size = next(
        line.split()[1]
        for line in metrics.splitlines()
        if line.startswith("localbox_warm_pool_size")
    )
    expect(tiles.filter(has_text="Warm pool")).to_contain_text(f"/ {int(float(pool_size))}")
    expect(tiles.filter(has_text="Health")).to_contain_text("database ok")
    expect(tiles.filter(has_text="Memory headroom")).to_contain_text("available")
    expect(tiles.filter(has_text="Disk headroom")).to_contain_text("free")
    console.assert_nothing_ran()


def skill_zip(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}/SKILL.md", f"---\nname: {name}\ndescription: {text}\n---\nRun it.\n")
        z.writestr(f"{name}/scripts/run.py", "print('<b>skill</b>')\n" * 20)
    return buffer.getvalue()


def test_files_and_skills(console: Console, client: openai.OpenAI) -> None:
    page = console.open("files")
    filename = unique("report") + ".txt"
    page.locator("#file-upload").set_input_files(
        files=[{"name": filename, "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.locator("#purpose").select_option("user_data")
    page.get_by_role("button", name="Upload", exact=True).click()
    row = page.locator("#files-api tr", has_text=filename)
    expect(row).to_contain_text("user_data")
    file_id = row.get_attribute("data-id")
    assert file_id
    assert client.files.retrieve(file_id).filename == filename
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Confirm").click()
    expect(page.locator("#files-api tr", has_text=filename)).to_have_count(0)

    name = f"console-{uuid.uuid4().hex[:6]}"
    page.goto(f"{console.server.url}/console#/skills")
    page.locator("#skill-zip").set_input_files(
        files=[
            {"name": "skill.zip", "mimeType": "application/zip", "buffer": skill_zip(name, "first")}
        ]
    )
    skill_row = page.locator("#skills tr", has_text=name)
    expect(skill_row).to_contain_text("first")
    skill_id = skill_row.get_attribute("data-id")
    assert skill_id
    client.skills.versions.create(skill_id, files=("skill.zip", skill_zip(name, "second")))
    skill_row.get_by_role("link", name=name).click()
    versions = page.locator("#versions tbody tr")
    expect(versions).to_have_count(2)
    versions.filter(has_text="second").get_by_role("button", name="Files").click()
    files = page.locator("#skill-files")
    expect(files).to_contain_text("Version 2")
    files.get_by_role("link", name=f"{name}/scripts/run.py").click()
    expect(files.locator("pre")).to_contain_text("print('<b>skill</b>')")
    files.get_by_role("link", name=f"{name}/SKILL.md").click()
    expect(files.locator("pre")).to_contain_text("description: second")
    client.skills.delete(skill_id)
    console.assert_nothing_ran()


def test_the_console_is_served_with_its_security_headers(
    server: LocalboxServer, keyed_server: LocalboxServer
) -> None:
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    r = httpx.get(f"{server.url}/")
    assert r.status_code == 307
    assert r.headers["location"] == "/console"
    for path in ("/console", "/console/static/app.js", "/console/static/console.css"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == policy
        assert r.headers["x-content-type-options"] == "nosniff"
    assert (
        httpx.get(f"{server.url}/console/static/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    page = httpx.get(f"{server.url}/console").text
    assert "<script>" not in page
    assert "style=" not in page
    # With keys the page loads without one; the API behind it does not.
    assert httpx.get(f"{keyed_server.url}/console").status_code == 200
    assert httpx.get(f"{keyed_server.url}/console/static/app.js").status_code == 200
    assert httpx.get(f"{keyed_server.url}/v1/containers").status_code == 401
    # Without keys the loopback rules hold for the console too.
    r = httpx.get(f"{server.url}/console", headers={"Host": "attacker.example"})
    assert r.status_code == 403
