"""A test upstream for the egress tests, run in a container: HTTP on 80, HTTPS on 443.

Every request is logged to stdout as one JSON line (host, path, headers), which the tests read
to see what really arrived. Files under /srv/www are served as they are (a package index).
"""

from __future__ import annotations

import gzip
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path("/srv/www")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # one write per answer: no delayed-ACK stall between head and body

    def do_GET(self) -> None:
        record = {
            "scheme": self.server.scheme,  # type: ignore[attr-defined]
            "host": self.headers.get("Host", ""),
            "path": self.path,
            "headers": dict(self.headers.items()),
        }
        print(json.dumps(record), flush=True)
        if self.path.startswith("/echo"):
            self.echo(record)
            return
        target = (ROOT / self.path.split("?")[0].lstrip("/")).resolve()
        if target.is_dir():
            target = target / "index.html"
        if self.path.startswith("/simple/") or self.path.startswith("/files/"):
            if not target.is_file() or not str(target).startswith(str(ROOT)):
                self.send_error(404)
                return
            body = target.read_bytes()
            kind = "text/html" if target.suffix == ".html" else "application/octet-stream"
        else:
            body = f"hello from {record['host']} over {record['scheme']}\n".encode()
            kind = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def echo(self, record: dict[str, object]) -> None:
        """What the request carried, in the body and in a response header: as an echo
        endpoint or an error page would hand it back. `pad=N` puts N bytes before it (a
        streamed body), `gzip=1` compresses it."""
        query = dict(q.partition("=")[::2] for q in self.path.partition("?")[2].split("&") if q)
        body = b"." * int(query.get("pad", "0") or 0) + json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo-Token", self.headers.get("X-Token", ""))
        if query.get("gzip"):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port: int, scheme: str, context: ssl.SSLContext | None) -> None:
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.scheme = scheme  # type: ignore[attr-defined]
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    threading.Thread(target=serve, args=(443, "https", context), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    serve(80, "http", None)
