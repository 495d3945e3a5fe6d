"""DockerEgress: the egress proxy container, and one internal network per allowlisted sandbox.

Topology, per server instance: one proxy container (mitmproxy with localbox's addon, from the
egress image) on a bridge network of its own, its only way out. Each allowlisted sandbox gets
a network of its own, `internal` (no route out) with no address for the host on its bridge,
holding two endpoints only: the sandbox and the proxy, at fixed addresses of a small subnet.
The proxy tells sandboxes apart by that subnet, which code in a sandbox cannot forge, and
applies the policy the server installed for it (written through the engine into a volume that
only the proxy mounts). Sandboxes get the proxy's CA bundle from a second volume, mounted
read-only over /etc/ssl/certs, which holds certificates only.

Servers that share a data dir (replicas, one instance id) share the proxy: whichever needs it
first makes it, and one that finds the name taken meanwhile uses the one the other made. The
proxy is removed only by the reconcile (one server at a time), never while it is younger than
the reconcile's grace, and a sandbox that finds it gone as it joins makes it again, once.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import logging
import tarfile
import threading
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

import docker
import docker.errors
from docker.models.containers import Container as DockerContainer
from docker.models.networks import Network

from server.runtime.base import EgressPolicy, SandboxRuntimeError

log = logging.getLogger("localbox.egress")

PROXY_PORT = 3128
STATE_PATH = "/var/lib/localbox-egress"
PUBLIC_PATH = "/var/lib/localbox-egress-ca"
SANDBOX_CERTS = "/etc/ssl/certs"
SANDBOX_BUNDLE = f"{SANDBOX_CERTS}/ca-certificates.crt"
SANDBOX_CA = f"{SANDBOX_CERTS}/localbox-egress-ca.pem"
LABEL_ROLE = "localbox.role"
LABEL_CONFIG = "localbox.egress-config"
ROLE_PROXY = "egress-proxy"
ROLE_SANDBOX_NET = "sandbox-network"
SUBNET_PREFIX = 29  # the gateway (never given to the host), the proxy, the sandbox
READY_TIMEOUT = 30.0
PROXY_CPU_SHARES = 8192
EGRESS_CMD = ["python3", "-m", "localbox_egress"]


def network_name(container_id: str) -> str:
    return f"localbox-net-{container_id}"


@dataclass(frozen=True)
class Attachment:
    """How a sandbox joins its network: where, at which address, with what settings."""

    network: str
    address: str
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]


def proxy_environment(proxy_url: str) -> dict[str, str]:
    """The settings that send a sandbox's HTTP(S) clients through the proxy and make them
    trust its CA."""
    local = "localhost,127.0.0.1,::1"
    return {
        "HTTP_PROXY": proxy_url,
        "HTTPS_PROXY": proxy_url,
        "http_proxy": proxy_url,
        "https_proxy": proxy_url,
        "NO_PROXY": local,
        "no_proxy": local,
        "PIP_PROXY": proxy_url,
        "PIP_CERT": SANDBOX_BUNDLE,
        "REQUESTS_CA_BUNDLE": SANDBOX_BUNDLE,
        "SSL_CERT_FILE": SANDBOX_BUNDLE,
        "CURL_CA_BUNDLE": SANDBOX_BUNDLE,
        "NODE_EXTRA_CA_CERTS": SANDBOX_CA,
    }


class DockerEgress:
    """The Docker side of allowlisted sandboxes; DockerRuntime calls it, nothing else does."""

    def __init__(
        self,
        client: Callable[[], docker.DockerClient],
        instance: str,
        *,
        image: str,
        subnets: str,
        extra_ca: str = "",
        memory_bytes: int = 4 << 30,
        allow_private: tuple[str, ...] = (),
        max_connections: int = 64,
        connection_rate: float = 20.0,
    ) -> None:
        self._client = client
        self.instance = instance
        self.image = image
        self.pool = ipaddress.ip_network(subnets)
        self.extra_ca = extra_ca
        self.memory_bytes = memory_bytes
        """For the proxy container: every allowlisted sandbox's proxy process (about 30 MiB
        each), each capped at 1 GiB of address space itself."""
        self.allow_private = allow_private
        self.max_connections = max_connections
        self.connection_rate = connection_rate
        self.proxy_name = f"localbox-egress-{instance}"
        self.outside_network = self.proxy_name
        self.state_volume = f"{self.proxy_name}-state"
        self.public_volume = f"{self.proxy_name}-ca"
        # Held while the proxy is made or removed and while a network is made, so that the
        # proxy is not removed between a create's ensure_proxy and its network.
        self._lock = threading.RLock()
        self._config: str | None = None
        self._ready_id: str | None = None
        """The proxy container seen ready last (another server may have made it again since)."""

    @property
    def client(self) -> docker.DockerClient:
        return self._client()

    def _labels(self, role: str, **extra: str) -> dict[str, str]:
        return {
            "localbox.managed": "true",
            "localbox.instance": self.instance,
            LABEL_ROLE: role,
            **extra,
        }

    # -- sandboxes ---------------------------------------------------------------------

    def attach(self, container_id: str, policy: EgressPolicy) -> Attachment:
        """Make the sandbox's network, put the proxy on it and install its policy."""
        for attempt in range(2):
            with self._lock:
                proxy = self.ensure_proxy()
                network, subnet = self._create_network(container_id)
            hosts = list(subnet.hosts())
            proxy_ip, sandbox_ip = str(hosts[1]), str(hosts[2])
            try:
                _join(network, proxy, proxy_ip)
                self._install_policy(proxy, container_id, subnet, policy)
                break
            except (docker.errors.APIError, SandboxRuntimeError):
                if attempt or not self._proxy_gone(proxy):
                    raise
                # Removed meanwhile (another server's reconcile found no allowlisted sandbox
                # an instant before this one made its network): made again, once.
                log.info("the egress proxy went while %s joined it; making it again", container_id)
        environment = proxy_environment(f"http://{proxy_ip}:{PROXY_PORT}")
        environment.update({s.name: s.placeholder for s in policy.secrets})
        return Attachment(
            network=network.name or network_name(container_id),
            address=sandbox_ip,
            environment=environment,
            volumes={self.public_volume: {"bind": SANDBOX_CERTS, "mode": "ro"}},
        )

    def release(self, container_id: str) -> None:
        """Remove the sandbox's policy and network (after the sandbox itself); idempotent."""
        try:
            network = self.client.networks.get(network_name(container_id))
        except docker.errors.NotFound:
            return
        self._remove_network(network)

    def _remove_network(self, network: Network) -> None:
        subnet = _subnet_of(network)
        if subnet is not None:
            self._remove_policy(_policy_key(subnet))
        with suppress(docker.errors.NotFound, docker.errors.APIError):
            network.disconnect(self.proxy_name, force=True)
        with suppress(docker.errors.NotFound):
            network.remove()

    def _create_network(self, container_id: str) -> tuple[Network, ipaddress.IPv4Network]:
        """A fresh internal network on the first free subnet of the pool."""
        name = network_name(container_id)
        with suppress(docker.errors.NotFound):
            self._remove_network(self.client.networks.get(name))  # a leftover of a failed try
        with self._lock:
            taken = self._taken_subnets()
            for candidate in self.pool.subnets(new_prefix=SUBNET_PREFIX):
                subnet = ipaddress.IPv4Network(candidate)
                if any(subnet.overlaps(t) for t in taken):
                    continue
                gateway = str(next(subnet.hosts()))
                ipam = docker.types.IPAMConfig(
                    pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)]
                )
                try:
                    network = self.client.networks.create(
                        name,
                        driver="bridge",
                        internal=True,
                        ipam=ipam,
                        labels=self._labels(
                            ROLE_SANDBOX_NET, **{"localbox.container_id": container_id}
                        ),
                        # The host gets no address on this bridge, so the sandbox cannot
                        # reach the host (nor anything else) through it.
                        options={"com.docker.network.bridge.inhibit_ipv4": "true"},
                    )
                except docker.errors.APIError as exc:
                    if "overlap" in str(exc).lower():
                        taken.append(subnet)  # another engine user took it meanwhile
                        continue
                    raise
                return network, subnet
        raise SandboxRuntimeError(
            f"create sandbox network: no free /{SUBNET_PREFIX} left in {self.pool} "
            "(LOCALBOX_EGRESS_SUBNETS)"
        )

    def _docker_subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Every Docker network's subnets, IPv6 ones included."""
        found = []
        for network in self.client.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                with suppress(ValueError, TypeError):
                    found.append(ipaddress.ip_network(config.get("Subnet", ""), strict=False))
        return found

    def _taken_subnets(self) -> list[ipaddress.IPv4Network]:
        taken = []
        for network in self.client.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                with suppress(ValueError, TypeError):
                    subnet = ipaddress.ip_network(config.get("Subnet", ""))
                    if isinstance(subnet, ipaddress.IPv4Network):
                        taken.append(subnet)
        return taken

    def _install_policy(
        self,
        proxy: DockerContainer,
        container_id: str,
        subnet: ipaddress.IPv4Network,
        policy: EgressPolicy,
    ) -> None:
        document = {
            "container_id": container_id,
            "subnet": str(subnet),
            "allowed_domains": list(policy.allowed_domains),
            "secrets": [
                {"domain": s.domain, "placeholder": s.placeholder, "value": s.value}
                for s in policy.secrets
            ],
            # Never reachable, whatever the operator opened: the other sandboxes' networks.
            "denied_networks": [str(self.pool)],
            "blocked_networks": sorted(
                {str(n) for n in self._docker_subnets()} | {str(a) for a in host_addresses()}
            ),
            "allowed_networks": list(self.allow_private),
            "max_connections": self.max_connections,
            "connection_rate": self.connection_rate,
        }
        key = _policy_key(subnet)
        data = json.dumps(document).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(f"{key}.json")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        # Into a staging folder first: the proxy then moves it into place in one step, so it
        # never reads half a policy, and a policy for the same subnet is replaced whole.
        if not proxy.put_archive(f"{STATE_PATH}/incoming", buffer.getvalue()):
            raise SandboxRuntimeError("install egress policy: the engine refused the archive")
        self._egress_command(proxy, ["install", key])

    def _remove_policy(self, key: str) -> None:
        try:
            proxy = self.client.containers.get(self.proxy_name)
        except docker.errors.NotFound:
            return
        if proxy.status == "running":
            with suppress(docker.errors.NotFound):  # removed meanwhile: its policies with it
                self._egress_command(proxy, ["remove", key])

    def _egress_command(self, proxy: DockerContainer, args: list[str]) -> str:
        result = proxy.exec_run([*EGRESS_CMD, *args], user="0")
        raw = result.output if isinstance(result.output, bytes) else b""
        output = raw.decode(errors="replace")
        if result.exit_code != 0:
            raise SandboxRuntimeError(f"egress proxy {args[0]}: {output.strip()[:200]}")
        return output

    # -- the proxy ---------------------------------------------------------------------

    def _wanted_config(self) -> str:
        if self._config is None:
            try:
                image_id = self.client.images.get(self.image).id
            except docker.errors.ImageNotFound as exc:
                raise SandboxRuntimeError(
                    f"the egress proxy image {self.image} is missing; build it with "
                    "scripts/ensure-egress-image.sh (make setup)"
                ) from exc
            material = f"{image_id}\n{self.memory_bytes}\n{self.extra_ca}\n{PROXY_CPU_SHARES}"
            self._config = hashlib.sha256(material.encode()).hexdigest()[:16]
        return self._config

    def ensure_proxy(self) -> DockerContainer:
        """The running proxy, made (or made again, when its image or settings changed). Made
        at the same moment by another server sharing the instance, it is that one; removed
        by another server while this one made it ready, it is made again, once."""
        with self._lock:
            config = self._wanted_config()
            seen: list[DockerContainer] = []
            for attempt in range(2):
                try:
                    return self._running_proxy(config, seen)
                except (docker.errors.APIError, SandboxRuntimeError):
                    if attempt or not self._proxy_gone(seen[-1] if seen else None):
                        raise
                    log.info("egress proxy %s went while it was made ready", self.proxy_name)
            raise AssertionError("unreachable")

    def _running_proxy(self, config: str, seen: list[DockerContainer]) -> DockerContainer:
        proxy: DockerContainer | None
        try:
            proxy = self.client.containers.get(self.proxy_name)
        except docker.errors.NotFound:
            proxy = None
        if proxy is not None and (proxy.labels or {}).get(LABEL_CONFIG) != config:
            log.info("egress proxy %s is out of date; replacing it", self.proxy_name)
            with suppress(docker.errors.NotFound):
                proxy.remove(force=True)
            proxy = None
        if proxy is None:
            proxy = self._create_proxy(config)
        seen.append(proxy)
        if proxy.status != "running":
            self._start(proxy)
        if proxy.id != self._ready_id:
            self._wait_ready(proxy)
            self._ready_id = proxy.id
        return proxy

    def _start(self, proxy: DockerContainer) -> None:
        """Start the proxy (a second start, another server's, is no error). The engine finds
        its network out by name as it starts it: should a racing server have made a second
        network of that name, only one is kept first."""
        for attempt in range(2):
            self._outside_network(self._labels(ROLE_PROXY))
            try:
                proxy.start()
                return
            except docker.errors.APIError as exc:
                if attempt or "ambiguous" not in str(exc).lower():
                    raise

    def _proxy_gone(self, proxy: DockerContainer | None) -> bool:
        """Whether the proxy is no longer there (removed, or made again, by another server);
        for None, whether there is no proxy at all."""
        try:
            found = self.client.containers.get(self.proxy_name)
        except docker.errors.NotFound:
            return True
        return proxy is not None and found.id != proxy.id

    def _create_proxy(self, config: str) -> DockerContainer:
        labels = self._labels(ROLE_PROXY)
        for volume in (self.state_volume, self.public_volume):
            try:
                self.client.volumes.get(volume)
            except docker.errors.NotFound:
                # Made at once by two servers, a volume is one volume: the engine gives the
                # second create the first one's.
                self.client.volumes.create(name=volume, labels=labels)
        outside = self._outside_network(labels)
        try:
            proxy = self._create_proxy_container(config, labels, outside)
        except docker.errors.APIError as exc:
            if not _name_taken(exc):
                raise
            # Another server made it at the same moment: this one uses theirs.
            log.info("egress proxy %s was made by another server meanwhile", self.proxy_name)
            return self.client.containers.get(self.proxy_name)
        # A proxy made again (new image, new settings) rejoins the sandboxes' networks at the
        # address their proxy settings name.
        for network in self._sandbox_networks():
            subnet = _subnet_of(network)
            if subnet is not None:
                with suppress(docker.errors.NotFound):  # the network went meanwhile
                    _join(network, proxy, str(list(subnet.hosts())[1]))
        return proxy

    def _outside_network(self, labels: dict[str, str]) -> Network:
        """The proxy's own network, its way out, made if missing. An engine before API 1.44
        lets two servers making it at once make two of that name (its CheckDuplicate is best
        effort): every server then keeps the same one (the one a proxy is on, else the
        oldest) and removes the other."""
        found = self._networks_named(self.outside_network)
        if not found:
            try:
                # The low-level create: the high-level one inspects what it made, which a
                # racing server may have removed already as a second of its name.
                self.client.api.create_network(
                    self.outside_network, driver="bridge", labels=labels, check_duplicate=True
                )
            except docker.errors.APIError as exc:
                if not _name_taken(exc):
                    raise
            found = self._networks_named(self.outside_network)
            if not found:
                raise SandboxRuntimeError(
                    f"create the egress proxy's network {self.outside_network}: it went as it "
                    "was made"
                )
        if len(found) == 1:
            return found[0]
        for network in list(found):  # inspected, for their members
            try:
                network.reload()
            except docker.errors.NotFound:
                found.remove(network)  # removed by the other server meanwhile
        if not found:
            return self._outside_network(labels)
        in_use = [n for n in found if n.attrs.get("Containers")]
        keep = min(in_use or found, key=lambda n: (_created_at(n), n.id or ""))
        for other in found:
            if other.id != keep.id:
                log.info("removing a second egress network named %s", self.outside_network)
                with suppress(docker.errors.NotFound, docker.errors.APIError):
                    other.remove()
        return keep

    def _networks_named(self, name: str) -> list[Network]:
        return [n for n in self.client.networks.list(names=[name]) if n.name == name]

    def _create_proxy_container(
        self, config: str, labels: dict[str, str], outside: Network
    ) -> DockerContainer:
        return self.client.containers.create(
            self.image,
            name=self.proxy_name,
            labels={**labels, LABEL_CONFIG: config},
            detach=True,
            # By id: the name may be two networks' for a moment (see _outside_network).
            network=outside.id,
            user="0:0",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
            volumes={
                self.state_volume: {"bind": STATE_PATH, "mode": "rw"},
                self.public_volume: {"bind": PUBLIC_PATH, "mode": "rw"},
            },
            environment={"LOCALBOX_EGRESS_EXTRA_CA_PEM": self.extra_ca},
            mem_limit=self.memory_bytes,
            # Ahead of sandboxes for the CPU (the default weight is 1024): a sandbox that
            # keeps its cores busy does not delay every sandbox's traffic.
            cpu_shares=PROXY_CPU_SHARES,
            pids_limit=8192,  # a process (a few threads) per allowlisted sandbox
            init=True,
            log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": "1m", "max-file": "1"}
            ),
            restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
        )

    def _wait_ready(self, proxy: DockerContainer) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proxy.exec_run([*EGRESS_CMD, "ready"], user="0").exit_code == 0:
                return
            proxy.reload()
            if proxy.status not in ("running", "restarting", "created"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        tail = proxy.logs(tail=20).decode(errors="replace")
        raise SandboxRuntimeError(f"the egress proxy did not start: {tail.strip()[-500:]}")

    def _sandbox_networks(self) -> list[Network]:
        return list(
            self.client.networks.list(
                filters={
                    "label": [
                        f"localbox.instance={self.instance}",
                        f"{LABEL_ROLE}={ROLE_SANDBOX_NET}",
                    ]
                }
            )
        )

    # -- reconcile ---------------------------------------------------------------------

    def reconcile(self, container_ids: Collection[str], grace_seconds: float = 60.0) -> None:
        """The proxy runs while any allowlisted sandbox does and is on each one's network;
        networks of other sandboxes go, and with no allowlisted sandbox left, the proxy."""
        wanted = set(container_ids)
        networks = {(n.attrs.get("Labels") or {}).get("localbox.container_id"): n
                    for n in self._sandbox_networks()}  # fmt: skip
        now = time.time()
        for cid, network in networks.items():
            if cid not in wanted and now - _created_at(network) > grace_seconds:
                log.info("removing egress network of %s: no running container owns it", cid)
                self._remove_network(network)
        if not wanted:
            with self._lock:
                if self._sandbox_networks():
                    return  # a create is making its sandbox
                with suppress(docker.errors.NotFound):
                    proxy = self.client.containers.get(self.proxy_name)
                    if now - _created_at(proxy) <= grace_seconds:
                        return  # just made, for a create (of any server) making its network
                    log.info("removing egress proxy %s: no allowlisted sandbox", self.proxy_name)
                    proxy.remove(force=True)
            return
        proxy = self.ensure_proxy()
        proxy.reload()
        joined = set((proxy.attrs.get("NetworkSettings") or {}).get("Networks") or {})
        for cid in wanted:
            own = networks.get(cid)
            if own is None or own.name in joined:
                continue
            subnet = _subnet_of(own)
            if subnet is not None:
                log.info("reconnecting the egress proxy to the network of %s", cid)
                _join(own, proxy, str(list(subnet.hosts())[1]))


def host_addresses(proc: str = "/proc/net") -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of this machine (of the server's network namespace): the proxy may not
    connect to them, whatever they are, public ones included."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    with suppress(OSError), open(f"{proc}/fib_trie") as f:
        previous = ""
        for line in f:
            if "/32 host LOCAL" in line:
                with suppress(ValueError):
                    found.append(ipaddress.IPv4Address(previous.split()[-1]))
            previous = line
    with suppress(OSError), open(f"{proc}/if_inet6") as f:
        for line in f:
            raw = line.split()[0]
            with suppress(ValueError, IndexError):
                found.append(ipaddress.IPv6Address(int(raw, 16)))
    return sorted(set(found), key=lambda a: (a.version, int(a)))


def _subnet_of(network: Network) -> ipaddress.IPv4Network | None:
    for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
        with suppress(ValueError, TypeError):
            subnet = ipaddress.ip_network(config.get("Subnet", ""))
            if isinstance(subnet, ipaddress.IPv4Network):
                return subnet
    return None


def _join(network: Network, proxy: DockerContainer, address: str) -> None:
    """Put the proxy on the network at address; done already (by another server that made
    the proxy meanwhile and joined it to every sandbox network) is done."""
    try:
        network.connect(proxy, ipv4_address=address)
    except docker.errors.APIError as exc:
        if isinstance(exc, docker.errors.NotFound) or "already exists" not in str(exc).lower():
            raise


def _name_taken(exc: docker.errors.APIError) -> bool:
    """Whether the engine refused a create because the name is another object's already."""
    text = str(exc).lower()
    return exc.status_code == 409 or "already in use" in text or "already exists" in text


def _created_at(item: Network | DockerContainer) -> float:
    created = str(item.attrs.get("Created", ""))
    try:
        return datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


def _policy_key(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet).replace("/", "_")
