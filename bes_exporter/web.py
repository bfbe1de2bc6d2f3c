"""The exporter's HTTP endpoint: a landing page at / and the metrics at /metrics."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("bes_exporter")

LANDING = b"""<!doctype html><html><head><title>DIRAC exporter</title></head><body>
<h1>DIRAC exporter</h1><p>Prometheus metrics of DIRAC's JobDB, PilotAgentsDB and ResourceStatusDB.</p>
<p><a href="/metrics">Metrics</a></p></body></html>
"""


def make_handler(registry: CollectorRegistry):
    class Handler(BaseHTTPRequestHandler):
        server_version = "bes-exporter"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body, status = encoder(registry), 200
            elif path == "/":
                body, content_type, status = LANDING, "text/html; charset=utf-8", 200
            else:
                body, content_type, status = b"not found\n", "text/plain; charset=utf-8", 404
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    return Handler


def serve(registry: CollectorRegistry, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``.server_address`` has the real port)."""
    server = ThreadingHTTPServer((host, port), make_handler(registry))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
