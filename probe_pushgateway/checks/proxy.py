"""X.509 proxy presence and remaining lifetime (``X509_USER_PROXY``, else /tmp/x509up_u<uid>).

Certificates are read with a tiny DER walker (only the validity dates), so no crypto library or
``openssl`` binary is needed on the worker node. The lifetime is that of the shortest-lived
certificate in the file (a proxy cannot outlive the certificates that signed it).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import time
from typing import Any, Dict, List, Tuple

from . import Context, Outcome, failed, ok

NAME = "proxy"
TIMEOUT = 5.0
DEFAULTS: Dict[str, Any] = {
    "path": None,                      # default: $X509_USER_PROXY, else /tmp/x509up_u<uid>
    "min_lifetime_seconds": 3600,
    "allowed_clock_skew_seconds": 300,
}
REASONS = ("missing", "unreadable", "invalid", "no_key", "expired", "short_lifetime", "not_yet_valid")

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _tlv(data: bytes, pos: int) -> Tuple[int, int, int]:
    """Read one DER tag-length-value at ``pos``: (tag, value start, value end)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        when = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
    elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def validity(der: bytes) -> Tuple[float, float]:
    """(notBefore, notAfter) as Unix times from a DER certificate."""
    tag, start, _ = _tlv(der, 0)            # Certificate
    tag, pos, end = _tlv(der, start)        # TBSCertificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, s, e = _tlv(der, pos)
    if tag == 0xA0:                         # [0] version
        tag, s, e = _tlv(der, e)
    for _ in range(3):                      # serialNumber, signature, issuer -> then validity
        tag, s, e = _tlv(der, e)
    if tag != 0x30:
        raise ValueError("no validity")
    t1, s1, e1 = _tlv(der, s)
    t2, s2, e2 = _tlv(der, e1)
    return _time(t1, der[s1:e1]), _time(t2, der[s2:e2])


def certificates(pem: bytes) -> List[Tuple[float, float]]:
    """Validity of every PEM certificate in ``pem`` (ValueError if one cannot be read)."""
    out = []
    for block in _PEM.findall(pem):
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
            out.append(validity(der))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"unreadable certificate: {exc}") from None
    return out


def proxy_path(opts: Dict[str, Any], env: Dict[str, str]) -> str:
    return opts.get("path") or env.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"


def run(opts: Dict[str, Any], ctx: Context) -> Outcome:
    path = proxy_path(opts, ctx.env)
    try:
        with open(path, "rb") as fh:
            pem = fh.read(1 << 20)
    except FileNotFoundError:
        return failed("missing", f"no proxy at {path}")
    except OSError as exc:
        return failed("unreadable", f"{path}: {exc.strerror or exc}")
    try:
        certs = certificates(pem)
    except ValueError as exc:
        return failed("invalid", f"{path}: {exc}")
    if not certs:
        return failed("invalid", f"{path} holds no certificate")
    if b"PRIVATE KEY-----" not in pem:
        return failed("no_key", f"{path} holds no private key")
    now = time.time()
    not_before = max(c[0] for c in certs)
    not_after = min(c[1] for c in certs)
    left = not_after - now
    if left <= 0:
        return failed("expired", f"{path} expired {-left:.0f}s ago")
    if not_before > now + opts["allowed_clock_skew_seconds"]:
        return failed("not_yet_valid", f"{path} valid only in {not_before - now:.0f}s")
    if left < opts["min_lifetime_seconds"]:
        return failed("short_lifetime", f"{path}: {left:.0f}s left (min {opts['min_lifetime_seconds']:.0f})")
    return ok(f"{path}: {left:.0f}s left, {len(certs)} certificate(s)")
