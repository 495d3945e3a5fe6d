"""Code execution (a localbox extension) against real sandboxes."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LocalboxServer


def run(server: LocalboxServer, container_id: str, code: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{server.base_url}/containers/{container_id}/exec",
        json={"code": code, **body},
        timeout=180,
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.fixture
def container_id(client: openai.OpenAI) -> Iterator[str]:
    c = client.containers.create(name="exec")
    yield c.id
    client.containers.delete(c.id)


def test_python_state_persists_between_calls(server: LocalboxServer, container_id: str) -> None:
    first = run(server, container_id, "import math\nx = 41\nf = open('notes.txt', 'w')")
    assert first["object"] == "container.exec"
    assert first["id"].startswith("exec_")
    assert first["container_id"] == container_id
    assert first["status"] == "completed"
    assert first["error"] is None
    second = run(server, container_id, "f.write('kept'); f.close()\nprint(x + 1, math.pi > 3)")
    assert second["stdout"] == "42 True\n"
    assert second["outputs"] == [{"type": "logs", "logs": "42 True\n"}]
    assert second["state_preserved"] is True
    assert isinstance(second["duration_ms"], int)
    third = run(server, container_id, "import os\nprint(os.getcwd(), open('notes.txt').read())")
    assert third["stdout"] == "/mnt/data kept\n"


def test_exception_comes_back_with_its_traceback(server: LocalboxServer, container_id: str) -> None:
    result = run(server, container_id, "def f():\n    return 1 / 0\nf()")
    assert result["status"] == "error"
    err = result["error"]
    assert err["name"] == "ZeroDivisionError"
    assert err["value"] == "division by zero"
    assert "return 1 / 0" in err["traceback"]
    assert "\x1b[" not in err["traceback"]
    assert run(server, container_id, "print('still alive')")["stdout"] == "still alive\n"


def test_plot_comes_back_as_an_image(server: LocalboxServer, container_id: str) -> None:
    result = run(
        server,
        container_id,
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()",
    )
    assert result["status"] == "completed", result
    images = [o for o in result["outputs"] if o["type"] == "image"]
    assert len(images) == 1
    assert images[0]["media_type"] == "image/png"
    assert base64.b64decode(images[0]["data"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_files_written_by_code_become_container_files(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    result = run(
        server,
        container_id,
        "import pandas as pd, os\nos.makedirs('out', exist_ok=True)\n"
        "pd.DataFrame({'a': [1, 2]}).to_csv('out/table.csv', index=False)",
    )
    assert result["status"] == "completed", result
    (created,) = result["files"]
    assert created["path"] == "/mnt/data/out/table.csv"
    assert created["source"] == "assistant"
    assert created["bytes"] == len(b"a\n1\n2\n")
    listed = {f.path: f for f in client.containers.files.list(container_id)}
    assert listed["/mnt/data/out/table.csv"].id == created["id"]
    got = client.containers.files.content.retrieve(created["id"], container_id=container_id)
    assert got.read() == b"a\n1\n2\n"
    removed = run(server, container_id, "import os\nos.remove('out/table.csv')")
    assert removed["files"] == []
    assert list(client.containers.files.list(container_id)) == []


def test_bash_runs_in_mnt_data_and_reports_exit_status(
    server: LocalboxServer, container_id: str
) -> None:
    ok = run(server, container_id, "pwd; echo err >&2", language="bash")
    assert ok["status"] == "completed"
    assert ok["stdout"] == "/mnt/data\n"
    assert ok["stderr"] == "err\n"
    assert ok["exit_code"] == 0
    bad = run(server, container_id, "echo hi; exit 3", language="bash")
    assert bad["status"] == "error"
    assert bad["stdout"] == "hi\n"
    assert bad["exit_code"] == 3
    assert "exit status 3" in bad["error"]["value"]


def test_timeout_interrupts_and_keeps_state(server: LocalboxServer, container_id: str) -> None:
    run(server, container_id, "kept = 'yes'")
    result = run(server, container_id, "while True:\n    pass", timeout=1)
    assert result["status"] == "timeout"
    assert result["state_preserved"] is True
    assert "KeyboardInterrupt" in result["error"]["traceback"]
    assert run(server, container_id, "print(kept)")["stdout"] == "yes\n"


def test_timeout_restarts_an_interpreter_that_will_not_stop(
    server: LocalboxServer, container_id: str
) -> None:
    run(server, container_id, "lost = 1")
    result = run(
        server,
        container_id,
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        timeout=1,
    )
    assert result["status"] == "timeout"
    assert result["state_preserved"] is False
    after = run(server, container_id, "print(lost)")
    assert after["status"] == "error"
    assert after["error"]["name"] == "NameError"


def test_streaming_sends_output_as_it_is_produced(
    server: LocalboxServer, container_id: str
) -> None:
    events: list[tuple[str, dict[str, Any], float]] = []
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)"
    with httpx.stream(
        "POST",
        f"{server.base_url}/containers/{container_id}/exec",
        json={"code": code, "stream": True},
        timeout=60,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: ")), time.monotonic()))
    kinds = [k for k, _, _ in events]
    assert kinds == ["stdout", "stdout", "stdout", "done"]
    assert [e["text"] for k, e, _ in events if k == "stdout"] == ["0\n", "1\n", "2\n"]
    done = events[-1][1]
    assert done["status"] == "completed"
    assert done["stdout"] == "0\n1\n2\n"
    # The first chunk arrived well before the end: it was streamed, not buffered.
    assert events[-1][2] - events[0][2] >= 0.6


def _interval(server: LocalboxServer, container_id: str, out: list[tuple[float, float]]) -> None:
    result = run(
        server,
        container_id,
        "import time\nt0 = time.time()\ntime.sleep(1.5)\nprint(t0, time.time())",
    )
    start, end = map(float, result["stdout"].split())
    out.append((start, end))


def test_two_containers_execute_at_once(server: LocalboxServer, client: openai.OpenAI) -> None:
    a = client.containers.create(name="parallel-a")
    b = client.containers.create(name="parallel-b")
    try:
        for cid in (a.id, b.id):
            run(server, cid, "1")  # start both kernels first
        spans: list[tuple[float, float]] = []
        threads = [
            threading.Thread(target=_interval, args=(server, c, spans)) for c in (a.id, b.id)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (s1, e1), (s2, e2) = spans
        assert max(s1, s2) < min(e1, e2), "the two runs did not overlap"
    finally:
        client.containers.delete(a.id)
        client.containers.delete(b.id)


def test_calls_to_one_container_run_one_at_a_time(
    server: LocalboxServer, container_id: str
) -> None:
    run(server, container_id, "1")
    spans: list[tuple[float, float]] = []
    threads = [
        threading.Thread(target=_interval, args=(server, container_id, spans)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (_s1, e1), (s2, _e2) = sorted(spans)
    assert s2 >= e1, "two calls to one container overlapped"


def test_exec_refreshes_last_active_at(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    before = client.containers.list(name="exec").data[0].last_active_at
    time.sleep(1.1)
    run(server, container_id, "1")
    after = next(c for c in client.containers.list(limit=100) if c.id == container_id)
    assert after.last_active_at > before


def test_bad_requests(server: LocalboxServer, container_id: str) -> None:
    url = f"{server.base_url}/containers/{container_id}/exec"
    r = httpx.post(url, json={"code": "1", "language": "ruby"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "language"
    r = httpx.post(url, json={"code": "1", "timeout": 0})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "timeout"
    r = httpx.post(url, json={"language": "python"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "code"
    r = httpx.post(f"{server.base_url}/containers/cntr_missing/exec", json={"code": "1"})
    assert r.status_code == 404


def test_python_state_survives_a_server_restart(fresh_server: LocalboxServer) -> None:
    cid = fresh_server.client().containers.create(name="survives").id
    run(fresh_server, cid, "survivor = [1, 2, 3]")
    fresh_server.stop()
    fresh_server.start()
    assert run(fresh_server, cid, "print(sum(survivor))")["stdout"] == "6\n"


def test_ipython_magics_work_from_the_first_call(fresh_server: LocalboxServer) -> None:
    """The magics load while the first call may already run (no warm pool here): a call
    that uses one waits for them."""
    cid = fresh_server.client().containers.create(name="magics").id
    first = run(fresh_server, cid, "%time answer = 6 * 7")
    assert first["status"] == "completed", first
    assert "Wall time" in first["stdout"]
    cell = run(fresh_server, cid, "%%writefile note.txt\nhello from a cell magic\n")
    assert cell["stdout"] == "Writing note.txt\n"
    shell = run(fresh_server, cid, "listing = !ls\nprint(listing, answer)")
    assert shell["stdout"] == "['note.txt'] 42\n"
    alias = run(fresh_server, cid, "cat note.txt")  # an alias, called without !
    assert alias["stdout"].replace("\r\n", "\n") == "hello from a cell magic\n"  # a pty
    table = run(
        fresh_server,
        cid,
        "m = get_ipython().magics_manager.magics\n"
        "print('timeit' in m['line'], 'capture' in m['cell'], type(m['line']['ls']).__name__)",
    )
    assert table["stdout"] == "True True Alias\n"
    unknown = run(fresh_server, cid, "%no_such_magic")
    assert "UsageError: Line magic function `%no_such_magic` not found" in unknown["stderr"]


def test_the_interpreter_starts_from_the_boot_bundle_and_nothing_is_missing(
    fresh_server: LocalboxServer,
) -> None:
    """IPython's modules come from the image's boot bundle, and some load only when first
    touched: all of them still work, with their source, and the bundle is out of the way
    once the start is over."""
    cid = fresh_server.client().containers.create(name="fastboot").id
    first = run(
        fresh_server,
        cid,
        "import sys\n"
        "print(type(sys.modules['IPython.core.interactiveshell'].__loader__).__name__)\n"
        "print(type(sys.modules['pickle']).__name__)\n"
        "import pickle\nprint(pickle.loads(pickle.dumps([1, 2])), type(pickle).__name__)",
    )
    # Modules left to load when touched (asyncio, pickle, pydoc, stack_data for tracebacks):
    # the first call finds them not loaded yet, and a touch loads them.
    assert first["stdout"] == "_BundleLoader\n_LazyModule\n[1, 2] module\n", first
    assert run(fresh_server, cid, "import asyncio\nawait asyncio.sleep(0)\nprint('awaited')")[
        "stdout"
    ] == ("awaited\n")
    assert run(fresh_server, cid, "import pickle\nprint(pickle.loads(pickle.dumps([1, 2])))")[
        "stdout"
    ] == ("[1, 2]\n")
    failed = run(fresh_server, cid, "import json\njson.loads('{')")
    assert failed["error"]["name"] == "JSONDecodeError"
    assert "json/decoder.py" in failed["error"]["traceback"]
    assert "raise JSONDecodeError" in failed["error"]["traceback"]  # the library's source
    source = run(
        fresh_server,
        cid,
        "import inspect, IPython.core.interactiveshell as m\n"
        "print(inspect.getsource(m.InteractiveShell.run_cell).split('(')[0].strip())",
    )
    assert source["stdout"] == "def run_cell\n"
    completions = run(fresh_server, cid, "print('print' in get_ipython().complete('pri')[1])")
    assert completions["stdout"] == "True\n"
    gone = run(
        fresh_server,
        cid,
        "import time\nfor _ in range(100):\n"
        "    if not any(type(f).__name__ == 'BundleFinder' for f in sys.meta_path): break\n"
        "    time.sleep(0.1)\n"
        "print([type(f).__name__ for f in sys.meta_path if 'Bundle' in type(f).__name__],"
        " 'jedi' in sys.modules,"
        " [n for n, m in list(sys.modules.items()) if type(m).__name__ == '_LazyModule'])",
    )
    # nor did completion bring jedi in, and every lazy module was loaded between calls
    assert gone["stdout"] == "[] False []\n"
