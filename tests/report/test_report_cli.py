"""bes-report's options: periods and bins, and bad input as one line naming the option, exit 2."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest
import yaml
from conftest import run_report

from bes_demo import services
from bes_report import queries
from bes_report.period import between, last, month, previous_month
from bes_report.prom import ReportError

NOW = calendar.timegm((2026, 12, 5, 7, 58, 40))
ROOT = Path(__file__).resolve().parents[2]


def test_periods_and_bins():
    nov = month("2026-11", NOW)
    assert (nov.start, nov.end) == (calendar.timegm((2026, 11, 1, 0, 0, 0)), calendar.timegm((2026, 12, 1, 0, 0, 0)))
    assert (nov.base, nov.plot_bin, len(nov.plot_edges()) - 1) == (3600, 86400, 30)
    assert previous_month(NOW) == nov
    dec = month("2026-12", NOW)  # not over yet: up to now, on the minute
    assert dec.end == calendar.timegm((2026, 12, 5, 7, 58, 0)) and dec.label == "2026-12 (so far)"
    assert month("2026-12", calendar.timegm((2027, 1, 3, 0, 0, 0))).end == calendar.timegm((2027, 1, 1, 0, 0, 0))
    day = between("2026-11-03", "2026-11-04", NOW)
    assert (day.base, day.plot_bin) == (3600, 3600)
    demo = last("24m", NOW)  # the demo's simulated day: one bar per simulated hour
    assert (demo.seconds, demo.base, demo.plot_bin, demo.end % 60) == (1440, 60, 60, 0)
    assert between("2026-11-03T06:30", "2026-11-10T06:30", NOW).base == 60  # not on whole hours


@pytest.mark.parametrize("call,needle", [
    (lambda: month("2026-13", NOW), "--month 2026-13: not a month; use YYYY-MM"),
    (lambda: month("2027-01", NOW), "--month 2027-01: the period starts in the future"),
    (lambda: between("2026-11-01", None, NOW), "--to: --from and --to go together"),
    (lambda: between("2026-11-02", "2026-11-01", NOW), "--to 2026-11-01: must be after --from"),
    (lambda: between("2026-11-01T10:00:30", "2026-11-02", NOW), "--from 2026-11-01T10:00:30: not a UTC date"),
    (lambda: last("1fortnight", NOW), "--last 1fortnight: not a duration"),
    (lambda: last("90s", NOW), "--last 90s: use whole minutes, at least 10"),
])
def test_bad_periods(call, needle):
    with pytest.raises(ReportError, match="^" + needle.replace("(", r"\(")):
        call()


def test_not_a_site_matches_the_rules():
    """The placeholder sites left out are the ones the shipped rules leave out."""
    thresholds = yaml.safe_load((ROOT / "alerts" / "thresholds.yml").read_text())
    assert queries.NOT_A_SITE == thresholds["not_a_site"]


@pytest.mark.parametrize("args,needle", [
    (["--month", "2026-13"], "--month 2026-13: not a month"),
    (["--month", "2026-11", "--last", "24m"], "--last: give one of --month, --from/--to and --last"),
    (["--availability-target", "x"], "argument --availability-target: 'x' is not a number"),
    (["--password-file", "/nonexistent/pw", "--user", "u"], "--password-file /nonexistent/pw: cannot read it"),
    (["--password-file", "/nonexistent/pw"], "--password-file: needs --user"),
    (["--ca-file", "/etc/hostname"], "--ca-file/--client-cert need an https URL"),
    (["--sites", ","], "--sites: empty"),
])
def test_bad_options_one_line(args, needle):
    port = services.free_port()
    done = run_report("--prometheus", f"http://127.0.0.1:{port}", *args, timeout=30)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_unreachable_prometheus(tmp_path):
    port = services.free_port()  # nothing listens there
    done = run_report("--prometheus", f"http://127.0.0.1:{port}", "--month", "2026-11", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"bes-report: --prometheus http://127.0.0.1:{port}: cannot connect (Connection "
                                   "refused); check the URL and that Prometheus runs")
    assert not (tmp_path / "o").exists()


def test_credentials_and_tls(month_prometheus, tmp_path):
    """The month's Prometheus serves HTTPS with basic auth: a wrong password, no CA, a wrong path."""
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    args = month_prometheus.args()
    cases = [
        (args[:-1] + [str(wrong)], "--user/--password-file: https://127.0.0.1"),
        (args[:2] + args[4:], "--ca-file: the certificate of https://127.0.0.1"),
        (["--prometheus", month_prometheus.url + "/nope", *args[2:]], "no Prometheus API there (HTTP 404)"),
    ]
    for case, needle in cases:
        done = run_report(*case, "--month", "2026-11", "--out", str(tmp_path / "o"), timeout=30)
        assert done.returncode == 2 and needle in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
