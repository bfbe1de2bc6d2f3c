"""The exporter's HTTP endpoint: a landing page at / and the metrics at /metrics, optionally behind TLS
(client certificates) and basic auth configured by ``--web.config.file`` (see webconfig.py).

The TLS handshake runs in the connection's own thread with a timeout, so a slow or silent client never
blocks the others; connections are capped at ``MAX_CONNECTIONS`` and idle ones closed after
``IDLE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .collector import scrape_deadline
from .webconfig import WebConfig, WebConfigSource

log = logging.getLogger("bes_exporter")

LANDING = b"""<!doctype html><html><head><title>DIRAC exporter</title></head><body>
<h1>DIRAC exporter</h1><p>Prometheus metrics of DIRAC's JobDB, PilotAgentsDB and ResourceStatusDB.</p>
<p><a href="/metrics">Metrics</a></p></body></html>
"""
MAX_CONNECTIONS = 64
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
AUTH_LOG_EVERY = 10.0  # seconds between two log lines about refused credentials


class _AuthLog:
    """Logs refused credentials at most once per AUTH_LOG_EVERY seconds, with the count in between."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0.0
        self.skipped = 0

    def refused(self, client: str, user: str) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last < AUTH_LOG_EVERY:
                self.skipped += 1
                return
            more = f" ({self.skipped} more refused since the last line)" if self.skipped else ""
            self.last, self.skipped = now, 0
        log.warning("refused basic auth from %s for user %r%s", client, user[:64], more)


def _deadline(header: str | None, offset: float) -> float | None:
    """Monotonic deadline from Prometheus's X-Prometheus-Scrape-Timeout-Seconds, less ``offset``."""
    try:
        timeout = float(header) if header else 0.0
    except ValueError:
        return None
    if not 0 < timeout < 1e6:
        return None
    return time.monotonic() + max(timeout - offset, 0.1 * timeout)


def make_handler(registry: CollectorRegistry, timeout_offset: float = 0.5):
    class Handler(BaseHTTPRequestHandler):
        server_version = "bes-exporter"
        timeout = IDLE_TIMEOUT

        def version_string(self) -> str:
            return self.server_version  # no Python version in the Server header

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            web: WebConfig | None = getattr(self.server, "current_web", lambda: None)()
            if web is not None:
                if not self.server.web.allow_request():
                    return self._reply(429, b"too many requests\n", "text/plain; charset=utf-8", web)
                if web.users and not self._authorized(web):
                    return self._reply(401, b"Unauthorized\n", "text/plain; charset=utf-8", web,
                                       {"WWW-Authenticate": 'Basic realm="bes-exporter", charset="UTF-8"'})
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                with scrape_deadline(_deadline(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
                                               timeout_offset)):
                    body, status = encoder(registry), 200
            elif path == "/":
                body, content_type, status = LANDING, "text/html; charset=utf-8", 200
            else:
                body, content_type, status = b"not found\n", "text/plain; charset=utf-8", 404
            self._reply(status, body, content_type, web)

        def _authorized(self, web: WebConfig) -> bool:
            header = self.headers.get("Authorization")
            if header is None:
                return False
            scheme, _, token = header.partition(" ")
            user, password = "", ""
            if scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(token.strip(), validate=True).decode(
                        "utf-8", "surrogateescape").partition(":")
                except (binascii.Error, ValueError):
                    user, password = "", ""
            if web.authenticate(user, password):  # runs bcrypt also for a malformed header
                return True
            self.server.auth_log.refused(self.address_string(), user)
            return False

        def _reply(self, status: int, body: bytes, content_type: str, web: WebConfig | None,
                   extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in {**(web.headers if web else {}), **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    return Handler


class ExporterHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can wrap each connection in TLS (per the current web config)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler, web: WebConfigSource | None = None):
        self.web = web
        self.auth_log = _AuthLog()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._local = threading.local()
        super().__init__(address, handler)

    def current_web(self) -> WebConfig | None:
        """The web config the current connection was accepted with (None: plain, open HTTP)."""
        return getattr(self._local, "web", None)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("more than %d connections: closing the one from %s", MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        conn = request
        try:
            web = self.web.current() if self.web is not None else None
            self._local.web = web
            if web is not None and web.ssl_context is not None:
                conn = self._handshake(request, client_address, web)
                if conn is None:
                    return
            self.finish_request(conn, client_address)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s: %s", client_address[0], exc)
        except Exception:  # noqa: BLE001 - like socketserver: one bad connection never ends the server
            self.handle_error(request, client_address)
        finally:
            self._local.web = None
            self.shutdown_request(conn or request)
            self._slots.release()

    def _handshake(self, request: socket.socket, client_address, web: WebConfig) -> ssl.SSLSocket | None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = web.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return None
        if not web.allowed_peer(tls.getpeercert()):
            log.warning("client certificate of %s has none of client_allowed_sans; closing", client_address[0])
            tls.close()
            return None
        return tls

    def handle_error(self, request, client_address) -> None:
        log.exception("error while serving %s", client_address[0] if client_address else "?")


def serve(registry: CollectorRegistry, host: str, port: int,
          web: WebConfigSource | None = None, timeout_offset: float = 0.5) -> ExporterHTTPServer:
    """Start serving in a daemon thread; returns the server (``.server_address`` has the real port)."""
    server = ExporterHTTPServer((host, port), make_handler(registry, timeout_offset), web)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
