"""What a hostile allowlisted sandbox does to the egress proxy, and what a bystander sandbox
measures meanwhile: run inside sandboxes by tests/api/test_egress_hardening.py and by
scripts/bench_egress.py."""

from __future__ import annotations

import statistics

BYSTANDER = """
import json, time, urllib.request
times = []
for i in range({n}):
    started = time.perf_counter()
    with urllib.request.urlopen('http://allowed.test/bystander', timeout=30) as r:
        r.read()
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""
"""Plain HTTP requests one after another, each timed (ms), through the proxy."""

FLOOD = """
import json, os, socket, threading, time, urllib.error, urllib.request
host, port = os.environ['HTTPS_PROXY'].rsplit('/', 1)[1].split(':')
# Idle tunnels: as many as the proxy lets this sandbox hold, asked for all at once.
tunnels, answers, lock = [], {{}}, threading.Lock()
def tunnel():
    try:
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b'CONNECT flood.test:443 HTTP/1.1\\r\\nHost: flood.test:443\\r\\n\\r\\n')
        head = s.recv(200).split(b'\\r\\n')[0].split()
        code = head[1].decode() if len(head) > 1 else 'closed'
        tunnels.append(s)
    except OSError:
        code = 'error'
    with lock:
        answers[code] = answers.get(code, 0) + 1
openers = [threading.Thread(target=tunnel) for _ in range({tunnels})]
for t in openers:
    t.start()
for t in openers:
    t.join()
for s in tunnels:
    s.close()
# Then requests as fast as {threads} threads can make them, each a new tunnel and handshake.
done = {{'ok': 0, 'limited': 0, 'failed': 0}}
stop = time.monotonic() + {seconds}
def flood():
    while time.monotonic() < stop:
        try:
            with urllib.request.urlopen('https://flood.test/flood', timeout=10) as r:
                r.read()
            done['ok'] += 1
        except Exception as exc:
            done['limited' if '429' in str(exc) else 'failed'] += 1
threads = [threading.Thread(target=flood) for _ in range({threads})]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({{'tunnels': answers, 'requests': done}}))
"""
"""Idle tunnels first (counted by the proxy's answer: 200, 429, or closed), then a flood of
HTTPS requests from many threads for a while."""


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]
