"""``bes-report``: the availability and reliability report of DIRAC sites for a month (or any period), from
Prometheus, as report.html (self-contained), report.pdf and report.csv.

    bes-report --prometheus http://prometheus:9090 --month 2026-11 --out report-2026-11
    bes-report --prometheus https://prom.example.org --ca-file ca.pem --user report --password-file pw \\
               --from 2026-11-01 --to 2026-12-01 --sites BES.IHEP-PBS.cn,BES.USTC.cn --instance bes

Bad input (option, period, site, an unreachable Prometheus) is one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .figures import Targets, collect
from .period import Period, between, last, month, previous_month
from .prom import Prometheus, ReportError

PROG = "bes-report"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as every other bad input
        print(f"{PROG}: {message}; see {PROG} --help", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Monthly availability and reliability report of DIRAC sites "
                "(ARGO formulas, from the probe-state rules), with jobs, pilots and black-hole nodes.")
    src = p.add_argument_group("Prometheus")
    src.add_argument("--prometheus", required=True, metavar="URL", help="base URL, e.g. http://127.0.0.1:9090")
    src.add_argument("--ca-file", metavar="FILE", help="CA bundle to verify Prometheus's certificate (https)")
    src.add_argument("--user", metavar="NAME", help="basic-auth user name")
    src.add_argument("--password-file", metavar="FILE", help="file holding the basic-auth password")
    src.add_argument("--client-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    src.add_argument("--client-key", metavar="FILE", help="key of --client-cert (default: in the cert file)")
    src.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per request (default 120)")
    per = p.add_argument_group("period (UTC; default: the previous calendar month)")
    per.add_argument("--month", metavar="YYYY-MM", help="a calendar month, e.g. 2026-11")
    per.add_argument("--from", dest="start", metavar="DATE", help="start, YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    per.add_argument("--to", dest="end", metavar="DATE", help="end (excluded), same forms")
    per.add_argument("--last", metavar="DURATION", help="the last DURATION up to now, e.g. 24m, 6h, 7d")
    sel = p.add_argument_group("what")
    sel.add_argument("--sites", metavar="A,B", help="only these sites (comma-separated; default: every site)")
    sel.add_argument("--instance", metavar="NAME", help="only this DIRAC instance (the dirac_instance label)")
    sel.add_argument("--availability-target", type=_fraction, default=0.90, metavar="F",
                     help="0-1 or a percentage (default 0.90, WLCG's usual)")
    sel.add_argument("--reliability-target", type=_fraction, default=0.95, metavar="F",
                     help="0-1 or a percentage (default 0.95)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: ./bes-report-<period>)")
    return p


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give e.g. 0.9 or 90%") from None
    value = value / 100 if text.endswith("%") or value > 1 else value
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0-1 (or 0-100 %)")
    return value


def _period(args: argparse.Namespace, now: float) -> Period:
    given = [name for name, v in (("--month", args.month), ("--from/--to", args.start or args.end),
                                  ("--last", args.last)) if v]
    if len(given) > 1:
        raise ReportError(f"{given[1]}: give one of --month, --from/--to and --last, not {' and '.join(given)}")
    if args.month:
        return month(args.month, now)
    if args.start or args.end:
        return between(args.start, args.end, now)
    if args.last:
        return last(args.last, now)
    return previous_month(now)


def _password(path: str | None, user: str | None) -> str | None:
    if path is None:
        return None
    if user is None:
        raise ReportError("--password-file: needs --user; give the basic-auth user name too")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ReportError(f"--password-file {path}: cannot read it ({exc.strerror}); give a readable file") from None


def _sites(text: str | None) -> list[str] | None:
    if text is None:
        return None
    sites = [s.strip() for s in text.split(",") if s.strip()]
    if not sites:
        raise ReportError("--sites: empty; give site names, e.g. --sites BES.IHEP-PBS.cn,BES.USTC.cn")
    return sites


def _out_dir(args: argparse.Namespace, p: Period) -> Path:
    default = p.label if len(p.label) == 7 else time.strftime("%Y-%m-%dT%H%M", time.gmtime(p.start))
    out = Path(args.out or f"bes-report-{default}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot create it ({exc.strerror}); give a writable directory") from None
    return out


def run(args: argparse.Namespace, now: float | None = None) -> int:
    now = time.time() if now is None else now
    p = _period(args, now)
    prom = Prometheus(args.prometheus, user=args.user, password=_password(args.password_file, args.user),
                      ca_file=args.ca_file, client_cert=args.client_cert, client_key=args.client_key,
                      timeout=args.timeout)
    report = collect(prom, p, instance=args.instance, sites=_sites(args.sites),
                     targets=Targets(args.availability_target, args.reliability_target))
    out = _out_dir(args, p)
    from . import export, render  # matplotlib and WeasyPrint load in seconds: not for a bad option

    page = render.page(report)
    (out / "report.html").write_text(page, encoding="utf-8")
    export.write_csv(report, out / "report.csv")
    try:
        export.write_pdf(page, out / "report.pdf")
    except (OSError, ImportError) as exc:
        print(f"{PROG}: report.pdf not written: WeasyPrint cannot run ({' '.join(str(exc).split())[:160]}); "
              "install Debian's libpango-1.0-0 libpangoft2-1.0-0 (scripts/setup.sh does)", file=sys.stderr)
        return 1
    print(render.summary(report)[0])
    for name in ("report.html", "report.pdf", "report.csv"):
        print(out / name)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except ReportError as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bes-report ... | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
