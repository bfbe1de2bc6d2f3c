"""Pushgateway client for the agents: push-add, delete and read groups, with basic auth, a CA file and an
optional client certificate (TLS set up exactly as the probe does it, :meth:`PushTarget.ssl_context`)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from prometheus_client import CollectorRegistry, delete_from_gateway, push_to_gateway, pushadd_to_gateway

from ..push import PushTarget


class PushError(Exception):
    """The Pushgateway could not be reached or refused a request (one line)."""


@dataclass
class Group:
    """One Pushgateway group: its grouping labels, push time and metric samples ``{name: [(labels, value)]}``."""

    labels: dict[str, str]
    push_time: float
    samples: dict[str, list[tuple[dict[str, str], float]]]

    def value(self, name: str, **labels: str) -> float | None:
        """The first sample of ``name`` whose labels include ``labels``."""
        for sample_labels, value in self.samples.get(name, []):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None


def _why(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class Pushgateway:
    """One Pushgateway (``url`` like ``http://host:9091``); every failure raises :class:`PushError`."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, timeout: float = 10, client_cert: str | None = None,
                 client_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers: list[tuple[str, str]] = []
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers.append(("Authorization", f"Basic {token}"))
        self._ctx = PushTarget(self.url, ca_file, client_cert=client_cert, client_key=client_key).ssl_context()

    def _opener(self) -> urllib.request.OpenerDirector:
        handlers: list = []
        if self._ctx is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._ctx))
        return urllib.request.build_opener(*handlers)

    def _handler(self) -> Callable:
        def handler(url, method, timeout, headers, data):
            def handle() -> None:
                req = urllib.request.Request(url, data=data, method=method)
                for k, v in list(headers) + self._headers:
                    req.add_header(k, v)
                with self._opener().open(req, timeout=timeout) as resp:
                    resp.read()

            return handle

        return handler

    def pushadd(self, job: str, grouping_key: dict[str, str], registry: CollectorRegistry) -> None:
        """POST: replace the pushed metric names in the group, keep its other metrics."""
        try:
            pushadd_to_gateway(self.url, job=job, registry=registry, grouping_key=grouping_key,
                               timeout=self.timeout, handler=self._handler())
        except (OSError, ValueError) as exc:
            raise PushError(f"push to {self.url} failed: {_why(exc)}") from None

    def push(self, job: str, grouping_key: dict[str, str], registry: CollectorRegistry) -> None:
        """PUT: replace the whole group."""
        try:
            push_to_gateway(self.url, job=job, registry=registry, grouping_key=grouping_key, timeout=self.timeout,
                            handler=self._handler())
        except (OSError, ValueError) as exc:
            raise PushError(f"push to {self.url} failed: {_why(exc)}") from None

    def delete(self, job: str, grouping_key: dict[str, str]) -> None:
        """DELETE the whole group."""
        try:
            delete_from_gateway(self.url, job=job, grouping_key=grouping_key, timeout=self.timeout,
                                handler=self._handler())
        except (OSError, ValueError) as exc:
            raise PushError(f"delete at {self.url} failed: {_why(exc)}") from None

    def groups(self, job: str | None = None) -> list[Group]:
        """All groups (optionally only those with label ``job``) from ``/api/v1/metrics``."""
        req = urllib.request.Request(self.url + "/api/v1/metrics")
        for k, v in self._headers:
            req.add_header(k, v)
        try:
            with self._opener().open(req, timeout=self.timeout) as resp:
                data = json.load(resp)["data"]
        except (OSError, ValueError, KeyError) as exc:
            raise PushError(f"reading groups from {self.url} failed: {_why(exc)}") from None
        out = []
        for entry in data or []:
            labels = entry.get("labels") or {}
            if job is not None and labels.get("job") != job:
                continue
            samples: dict[str, list[tuple[dict[str, str], float]]] = {}
            for name, family in entry.items():
                if not isinstance(family, dict) or "metrics" not in family:
                    continue
                for m in family.get("metrics") or []:
                    try:
                        value = float(m.get("value"))
                    except (TypeError, ValueError):
                        continue
                    samples.setdefault(name, []).append((m.get("labels") or {}, value))
            push = samples.get("push_time_seconds", [({}, 0.0)])[0][1]
            out.append(Group(labels=dict(labels), push_time=push, samples=samples))
        return out
