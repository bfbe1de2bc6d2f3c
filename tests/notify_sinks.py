"""Where a real Alertmanager delivers in tests: an SMTP sink (aiosmtpd) and a webhook receiver, both on
loopback, both keeping every message they got. Use them as context managers::

    with SmtpSink() as smtp, WebhookSink() as hooks:
        ...  # point Alertmanager's smtp_smarthost at smtp.address, its webhook URLs at hooks.url + "/name"
        mails = wait_until(lambda: smtp.messages or None, 30, "a mail")
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from bes_demo.services import HOST, free_port
from bes_demo.stack import wait_until  # noqa: F401 - the tests' poll, imported from here

ALERTS = Path(__file__).resolve().parent.parent / "alerts"


@dataclass
class Mail:
    """One delivered mail: envelope recipients and the parsed message."""

    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body (what a mail client without HTML shows)."""
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part else ""


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(Mail(list(envelope.rcpt_tos), msg))
        return "250 OK"


class SmtpSink:
    """An SMTP server on ``127.0.0.1:<free port>`` that accepts every mail (no TLS, no auth) and keeps it."""

    def __init__(self) -> None:
        self.messages: list[Mail] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname=HOST, port=self.port)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def mails(self) -> list[Mail]:
        with self.lock:
            return list(self.messages)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class WebhookSink:
    """An HTTP server on ``127.0.0.1:<free port>`` that answers 200 to every POST and keeps
    ``(path, JSON body)`` of each, in arrival order."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    sink.posts.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"

    def received(self, path: str | None = None) -> list[Any]:
        """JSON bodies received (on ``path`` only, if given)."""
        with self.lock:
            return [body for p, body in self.posts if path is None or p == path]

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def render_alertmanager_config(out: Path, smtp: str, chat_url: str = "", webhook_url: str = "",
                               group_wait: str = "1s", group_interval: str = "2s") -> Path:
    """Write ``out``: alerts/alertmanager.yml with its routes, inhibitions and templates unchanged, delivering
    on loopback: mail through ``smtp`` (host:port), chat to ``chat_url``; with ``webhook_url`` each receiver
    gets only a generic webhook at ``webhook_url/<receiver>`` (to count notifications). Timers shortened."""
    cfg = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    cfg["templates"] = [str(ALERTS / t) for t in cfg["templates"]]
    cfg["global"]["smtp_smarthost"] = smtp
    cfg["global"]["slack_api_url"] = chat_url or "http://127.0.0.1:9/unused"
    cfg["route"].update(group_wait=group_wait, group_interval=group_interval)
    if webhook_url:
        cfg["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}",
                                                                     "send_resolved": False}]}
                            for r in cfg["receivers"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out
