"""network_policy "allowlist": sandboxes reach allowlisted domains through the egress proxy only.

The upstreams are the suite's own (a container on the proxy's outside network, under the
aliases allowed.test, sub.allowed.test, other.test, denied.test and packages.test, serving HTTP and
HTTPS with a test CA the proxy is told to trust); nothing here touches the internet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import docker
import httpx
import openai
import pytest

from tests.api.egress.world import (
    PRIVATE_RANGES,
    SECRET,
    EgressWorld,
    egress_world,
)
from tests.api.test_docker_restart import start_engine, stop_engine
from tests.api.test_exec import run
from tests.conftest import SANDBOX_RUNTIME


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressWorld]:
    # The upstream is a container on a Docker network: a private address.
    with egress_world(
        tmp_path_factory.mktemp("egress"), {"LOCALBOX_EGRESS_ALLOW_PRIVATE": PRIVATE_RANGES}
    ) as made:
        yield made


def test_allowlist_is_echoed_and_reaches_allowed_hosts_over_http_and_https(
    world: EgressWorld,
) -> None:
    c = world.create(["Allowed.test", "other.test"])
    assert c.network_policy.type == "allowlist"
    assert c.network_policy.allowed_domains == ["allowed.test", "other.test"]
    got = world.client.containers.retrieve(c.id)
    assert got.network_policy.allowed_domains == ["allowed.test", "other.test"]
    results = world.python(
        c.id,
        "print(json.dumps([fetch('http://allowed.test/a'), fetch('https://allowed.test/b'),"
        " fetch('https://sub.allowed.test/c'), fetch('https://other.test/d')]))",
    )
    assert results == [
        [200, "hello from allowed.test over http\n"],
        [200, "hello from allowed.test over https\n"],
        [200, "hello from sub.allowed.test over https\n"],
        [200, "hello from other.test over https\n"],
    ]
    curl = run(world.server, c.id, "curl -sS https://allowed.test/curl", language="bash")
    assert curl["stdout"] == "hello from allowed.test over https\n", curl
    world.client.containers.delete(c.id)


def test_denied_hosts_and_raw_addresses_are_refused_with_a_clear_error(
    world: EgressWorld,
) -> None:
    c = world.create(["allowed.test"])
    results = world.python(
        c.id,
        "print(json.dumps([fetch('http://denied.test/x'), fetch('https://denied.test/y'),"
        f" fetch('http://{world.upstream_ip}/z'), fetch('https://{world.upstream_ip}/z'),"
        " fetch('https://allowed.test:8443/p')]))",
    )
    http_denied, https_denied, raw_http, raw_https, other_port = results
    assert http_denied[0] == 403
    assert "denied.test is not on this container's allowlist" in http_denied[1]
    assert https_denied[0] is None
    assert "403" in https_denied[1]
    assert "denied.test is not on this container's allowlist" in https_denied[1]
    assert raw_http[0] == 403
    assert f"{world.upstream_ip} is an IP address" in raw_http[1]
    assert "is an IP address" in raw_https[1]
    assert "port 8443 of allowed.test" in other_port[1]
    assert not [
        r for r in world.received() if "denied" in r["host"] or r["path"] in ("/x", "/y", "/z")
    ]
    world.client.containers.delete(c.id)


def test_nothing_bypasses_the_proxy(world: EgressWorld) -> None:
    a = world.create(["allowed.test"])
    b = world.create(["allowed.test"])
    b_ip = next(
        iter(
            world.docker.containers.get(f"localbox-{b.id}")
            .attrs["NetworkSettings"]["Networks"]
            .values()
        )
    )["IPAddress"]
    code = f"""
import os, socket, time
def connect(host, port):
    started = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "connected"
    except OSError as e:
        return f"{{type(e).__name__}} after {{time.monotonic() - started:.1f}}s"
def resolve(name):
    try:
        return socket.getaddrinfo(name, 80)[0][4][0]
    except OSError as e:
        return type(e).__name__
proxy = os.environ["HTTP_PROXY"].split("//")[1].split(":")[0]
gateway = proxy.rsplit(".", 1)[0] + "." + str(int(proxy.rsplit(".", 1)[1]) - 1)
print(json.dumps({{
    "upstream": connect("{world.upstream_ip}", 80),
    "neighbour": connect("{b_ip}", 80),
    "gateway": connect(gateway, 80),
    "docker_bridge": connect("172.17.0.1", 80),
    "proxy_other_port": connect(proxy, 22),
    "dns_allowed": resolve("allowed.test"),
    "dns_outside": resolve("example.com"),
    "dns_proxy": resolve("localbox-egress-{world.server.instance_id}"),
}}))
"""
    result = world.python(a.id, code)
    for key in ("upstream", "neighbour", "gateway", "docker_bridge", "proxy_other_port"):
        assert result[key] != "connected", (key, result)
        assert float(result[key].rsplit(" ", 1)[1].rstrip("s")) < 5, (key, result)
    assert result["dns_allowed"] == "gaierror"
    assert result["dns_outside"] == "gaierror"
    world.client.containers.delete(a.id)
    world.client.containers.delete(b.id)


def test_domain_secrets_reach_their_domain_only(world: EgressWorld) -> None:
    c = world.create(
        ["allowed.test", "other.test"],
        [{"domain": "allowed.test", "name": "EXAMPLE_API_KEY", "value": SECRET}],
    )
    responses = [
        c.model_dump_json(),
        world.client.containers.retrieve(c.id).model_dump_json(),
        world.client.containers.list().model_dump_json(),
    ]
    assert all(SECRET not in r for r in responses)
    assert "domain_secrets" not in responses[0]

    results = world.python(
        c.id,
        "import os\nkey = os.environ['EXAMPLE_API_KEY']\n"
        "h = {'Authorization': 'Bearer ' + key, 'X-Key': key}\n"
        "print(json.dumps([key, fetch('https://allowed.test/s1?key=' + key, h),"
        " fetch('http://allowed.test/s2?key=' + key, h),"
        " fetch('https://other.test/s3?key=' + key, h)]))",
    )
    placeholder = results[0]
    assert placeholder.startswith("localbox-secret-")
    assert SECRET not in placeholder
    assert [r[0] for r in results[1:]] == [200, 200, 200]
    env = run(world.server, c.id, "env", language="bash")["stdout"]
    assert f"EXAMPLE_API_KEY={placeholder}" in env
    assert SECRET not in env
    inspect = json.dumps(world.docker.containers.get(f"localbox-{c.id}").attrs)
    assert SECRET not in inspect

    seen = {r["path"].split("?")[0]: r for r in world.received() if placeholder[-8:] in r["path"]
            or SECRET in r["path"]}  # fmt: skip
    for path in ("/s1", "/s2"):
        assert seen[path]["path"] == f"{path}?key={SECRET}"
        assert seen[path]["headers"]["Authorization"] == f"Bearer {SECRET}"
        assert seen[path]["headers"]["X-Key"] == SECRET
    assert seen["/s3"]["path"] == f"/s3?key={placeholder}"
    assert seen["/s3"]["headers"]["Authorization"] == f"Bearer {placeholder}"

    data_dir = world.server.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    world.client.containers.delete(c.id)


ECHO_SECRET = "sk-echo/0123&x=1"
ECHO = """
import gzip, os, urllib.request
key = os.environ['ECHO_KEY']
out = {}
for name, url in [
    ('https', 'https://allowed.test/echo?key=' + key),
    ('http', 'http://allowed.test/echo?key=' + key),
    ('streamed', 'https://allowed.test/echo?pad=400000&key=' + key),
    ('gzip', 'https://allowed.test/echo?gzip=1&key=' + key),
]:
    request = urllib.request.Request(url, headers={'X-Token': key, 'Authorization': key})
    with urllib.request.urlopen(request, timeout=30) as r:
        body = r.read()
        if r.headers.get('Content-Encoding') == 'gzip':
            body = gzip.decompress(body)
        text = body.decode()
        out[name] = [r.status, dict(r.headers), len(text), text.lstrip('.')]
print(json.dumps([key, out]))
"""


def test_the_real_secret_never_comes_back_to_the_sandbox(world: EgressWorld) -> None:
    c = world.create(
        ["allowed.test"], [{"domain": "allowed.test", "name": "ECHO_KEY", "value": ECHO_SECRET}]
    )
    placeholder, answers = world.python(c.id, ECHO)
    seen = [r for r in world.received() if r["path"].startswith("/echo")][-4:]
    assert all(r["headers"]["X-Token"] == ECHO_SECRET for r in seen)  # it did go out
    encoded = quote(ECHO_SECRET, safe="")
    assert all(encoded in r["path"] for r in seen)
    assert set(answers) == {"https", "http", "streamed", "gzip"}
    for name, (status, headers, _, body) in answers.items():
        assert status == 200, name
        text = json.dumps(headers) + body
        assert ECHO_SECRET not in text, name
        assert encoded not in text, name
        assert headers["X-Echo-Token"] == placeholder, name
        echoed = json.loads(body)
        assert echoed["headers"]["X-Token"] == placeholder, name
        assert echoed["headers"]["Authorization"] == placeholder, name
        assert echoed["path"].endswith(f"key={placeholder}"), name
    assert answers["streamed"][2] > 400000
    world.client.containers.delete(c.id)


def test_pip_downloads_from_an_allowlisted_index(world: EgressWorld) -> None:
    c = world.create(["packages.test"])
    result = run(
        world.server,
        c.id,
        "pip download --no-deps --disable-pip-version-check -d /tmp/dl "
        "--index-url https://packages.test/simple/ tinypkg && ls /tmp/dl",
        language="bash",
    )
    assert result["exit_code"] == 0, result
    assert "tinypkg-1.0-py3-none-any.whl" in result["stdout"]
    world.client.containers.delete(c.id)


def test_a_restart_keeps_allowlisted_sandboxes_working_and_delete_removes_the_network(
    world: EgressWorld,
) -> None:
    c = world.create(
        ["allowed.test"], [{"domain": "allowed.test", "name": "TOKEN", "value": SECRET}]
    )
    network = f"localbox-net-{c.id}"
    assert world.docker.networks.get(network).attrs["Internal"] is True
    world.server.stop()
    world.server.start()
    world.client = world.server.client(max_retries=0)
    status, body = world.python(
        c.id,
        "import os\nprint(json.dumps(fetch('https://allowed.test/after-restart',"
        " {'X-Token': os.environ['TOKEN']})))",
    )
    assert (status, body) == (200, "hello from allowed.test over https\n")
    seen = [r for r in world.received() if r["path"] == "/after-restart"]
    assert seen[-1]["headers"]["X-Token"] == SECRET

    proxy = world.docker.containers.get(f"localbox-egress-{world.server.instance_id}")
    policies = proxy.exec_run(["ls", "/var/lib/localbox-egress/policies"]).output.decode()
    world.client.containers.delete(c.id)
    with pytest.raises(docker.errors.NotFound):
        world.docker.networks.get(network)
    after = proxy.exec_run(["ls", "/var/lib/localbox-egress/policies"]).output.decode()
    assert len(after.split()) == len(policies.split()) - 1


def test_an_engine_restart_keeps_allowlisted_sandboxes_working(world: EgressWorld) -> None:
    c = world.create(
        ["allowed.test"], [{"domain": "allowed.test", "name": "TOKEN", "value": SECRET}]
    )
    readies = world.upstream.logs().count(b'"ready"')
    stop_engine()
    start_engine()
    world.upstream.start()  # the test's upstream has no restart policy; localbox's objects do
    deadline = time.monotonic() + 60
    while world.upstream.logs().count(b'"ready"') <= readies:
        assert time.monotonic() < deadline, "the upstream did not start again"
        time.sleep(0.2)
    while httpx.get(f"{world.server.url}/health").status_code != 200:
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.2)
    code = (
        "import os\nprint(json.dumps(fetch('https://allowed.test/after-engine-restart',"
        " {'X-Token': os.environ['TOKEN']})))"
    )
    # The engine starts the proxy again itself; mitmproxy takes a moment to listen.
    while (answer := world.python(c.id, code))[0] is None:
        assert time.monotonic() < deadline, f"the proxy did not come back: {answer}"
        time.sleep(0.5)
    assert answer == [200, "hello from allowed.test over https\n"]
    seen = [r for r in world.received() if r["path"] == "/after-engine-restart"]
    assert seen[-1]["headers"]["X-Token"] == SECRET
    denied, _ = world.python(c.id, "print(json.dumps(fetch('http://denied.test/')))")
    assert denied == 403
    world.client.containers.delete(c.id)


@pytest.mark.parametrize(
    ("policy", "param"),
    [
        ({"allowed_domains": []}, "network_policy"),
        ({"allowed_domains": ["10.0.0.1"]}, "network_policy.allowed_domains[0]"),
        ({"allowed_domains": ["not a host"]}, "network_policy.allowed_domains[0]"),
        (
            {
                "allowed_domains": ["allowed.test"],
                "domain_secrets": [{"domain": "other.test", "name": "K", "value": "v"}],
            },
            "network_policy.domain_secrets[0].domain",
        ),
        (
            {
                "allowed_domains": ["allowed.test"],
                "domain_secrets": [{"domain": "allowed.test", "name": "HTTPS_PROXY", "value": "v"}],
            },
            "network_policy.domain_secrets[0].name",
        ),
    ],
)
def test_bad_allowlists_are_refused(
    client: openai.OpenAI, policy: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.create(name="bad", network_policy={"type": "allowlist", **policy})  # type: ignore[arg-type]
    assert info.value.param is not None
    assert info.value.param.startswith(param)


@pytest.mark.parametrize(
    "entry",
    [
        "127.1",
        "172.24.1:18999",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.0.0.1.",
        "[::1]",
        "::1",
        "[::ffff:7f00:1]:443",
    ],
)
def test_every_form_a_resolver_takes_for_an_address_is_refused(
    client: openai.OpenAI, entry: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.create(
            name="bad",
            network_policy={"type": "allowlist", "allowed_domains": ["allowed.test", entry]},  # type: ignore[arg-type]
        )
    assert info.value.param == "network_policy.allowed_domains[1]"
    assert f"'{entry}' is an IP address" in info.value.message


def test_allowlisted_sandboxes_run_under_the_configured_runtime(
    world: EgressWorld, docker_client: docker.DockerClient
) -> None:
    c = world.create(["allowed.test"])
    runtime = docker_client.containers.get(f"localbox-{c.id}").attrs["HostConfig"]["Runtime"]
    kernel = run(world.server, c.id, "dmesg 2>&1 | head -n 1", language="bash")["stdout"]
    if SANDBOX_RUNTIME == "runsc":
        # gVisor with the host's network stack inside the container's own namespace: the
        # sandbox's bridge network, whose only other member is the egress proxy.
        assert runtime == "runsc-host-network"
        assert "Starting gVisor" in kernel
    else:
        assert runtime == SANDBOX_RUNTIME
        assert "Operation not permitted" in kernel
    assert world.python(c.id, "print(json.dumps(fetch('https://allowed.test/x')))") == [
        200,
        "hello from allowed.test over https\n",
    ]
    assert world.python(c.id, "print(json.dumps(fetch('http://denied.test/x')))")[0] == 403
