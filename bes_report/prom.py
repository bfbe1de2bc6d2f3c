"""A small client for Prometheus's HTTP API (instant and range queries, loaded rules), with basic auth,
a CA file and an optional client certificate. Every failure is a :class:`ReportError` naming the option
to change."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

# Steps per range query (Prometheus allows 11 000): a few hundred keep each answer small, as its
# --query.max-samples counts every point of the answer.
MAX_POINTS = 200


class ReportError(Exception):
    """Bad input or an unusable Prometheus, as one line that names the option and the fix."""


class TooManySamples(ReportError):
    """Prometheus refused a query that would load more samples than its --query.max-samples."""


@dataclass
class Prometheus:
    """One Prometheus server at ``url`` (``http(s)://host:port[/prefix]``)."""

    url: str
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 120.0
    _opener: urllib.request.OpenerDirector = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ReportError(f"--prometheus {self.url}: not an http(s) URL; give e.g. --prometheus http://host:9090")
        handlers: list = []
        if parsed.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl_context()))
        elif self.ca_file or self.client_cert:
            raise ReportError(f"--ca-file/--client-cert need an https URL, not {self.url}")
        self._opener = urllib.request.build_opener(*handlers)

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ReportError(f"--ca-file {self.ca_file}: cannot load it ({_why(exc)}); give a PEM CA bundle") from None
        if self.client_cert:
            try:
                ctx.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ReportError(f"--client-cert {self.client_cert}: cannot load it ({_why(exc)}); give a PEM "
                                  "certificate and its key (--client-key)") from None
        return ctx

    def get(self, path: str, params: dict | None = None) -> dict | list:
        """``/api/v1/<path>`` and its ``data``; queries are POSTed (a long query fits), the rest is a GET."""
        url = f"{self.url}/api/v1/{path}"
        encoded = urllib.parse.urlencode(params or {}).encode()
        req = (urllib.request.Request(url, data=encoded, method="POST") if path.startswith("query")
               else urllib.request.Request(url + (f"?{encoded.decode()}" if encoded else "")))
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, params) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._connect_error(exc) from None
        except ValueError:
            raise ReportError(f"--prometheus {self.url}: the answer to {path} is not JSON; give the base URL of "
                              "Prometheus itself, e.g. http://host:9090") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ReportError(f"--prometheus {self.url}: {path} failed: {str(body)[:200]}")
        return body["data"]

    def _http_error(self, exc: urllib.error.HTTPError, params: dict | None) -> ReportError:
        if exc.code == 401:
            return ReportError(f"--user/--password-file: {self.url} answered 401 Unauthorized; give the basic-auth "
                               "user and a file holding its password")
        if exc.code == 403:
            return ReportError(f"--user: {self.url} answered 403 Forbidden for this user; use an account allowed "
                               "to query")
        if exc.code == 404:
            return ReportError(f"--prometheus {self.url}: no Prometheus API there (HTTP 404); give the base URL, "
                               "e.g. http://host:9090")
        try:
            detail = json.loads(exc.read()).get("error", "")
        except (ValueError, OSError, AttributeError):
            detail = ""
        query = (params or {}).get("query", "")
        if "too many samples" in detail:
            return TooManySamples(f"--prometheus {self.url}: {detail}; raise its --query.max-samples")
        return ReportError(f"--prometheus {self.url}: HTTP {exc.code} {detail or exc.reason}"
                           + (f" for query {query[:160]}" if query else ""))

    def _connect_error(self, exc: Exception) -> ReportError:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return ReportError(f"--ca-file: the certificate of {self.url} is not trusted ({reason.verify_message}); "
                               "give the CA that signed it with --ca-file")
        if isinstance(reason, ssl.SSLError):
            return ReportError(f"--prometheus {self.url}: TLS failed ({_why(reason)}); check https, --ca-file and "
                               "--client-cert")
        return ReportError(f"--prometheus {self.url}: cannot connect ({_why(reason)}); check the URL and that "
                           "Prometheus runs")

    def query(self, expr: str, time: float) -> list[dict]:
        """Instant vector at ``time`` (Unix seconds)."""
        return self.get("query", {"query": expr, "time": f"{time:.3f}"})["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[tuple, dict[float, float]]:
        """Range query, split into chunks Prometheus accepts: ``{labels: {time: value}}`` with labels as a
        sorted tuple of (name, value)."""
        out: dict[tuple, dict[float, float]] = {}
        t = start
        while t <= end + 1e-6:
            chunk_end = min(end, t + step * (MAX_POINTS - 1))
            data = self.get("query_range", {"query": expr, "start": f"{t:.3f}", "end": f"{chunk_end:.3f}",
                                            "step": f"{step:g}"})
            for series in data["result"]:
                values = out.setdefault(tuple(sorted(series["metric"].items())), {})
                for ts, value in series["values"]:
                    values[round(float(ts), 3)] = float(value)
            t = chunk_end + step
        return out

    def rules(self) -> list[dict]:
        """The rule groups loaded in Prometheus (``/api/v1/rules``)."""
        return self.get("rules").get("groups", [])


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160] or type(exc).__name__
