"""bes-report's figures for the known month (tests/report/month.py) against the values worked out by hand
from that month's inputs, on a real Prometheus whose recording rules are the shipped ones.

Hours per state, by hand (30 days = 720 h; Prometheus saw nothing on the 25th 00:00-06:00, 6 h):

- BES.ALPHA.cn: seen 720 - 6 = 714 h. CRITICAL 4 h (the 3rd 12:00-16:00, both CEs failing; 10:00-12:00
  only ce1 fails and the site is UP as long as one CE is; ce2 alone failing on the 6th is UP too).
  DOWNTIME 72 h (10th-13th). UNKNOWN 3 h (busy, 20th 08:00-11:00). UP = 714 - 4 - 72 - 3 = 635 h.
- BES.BETA.cn: seen 714 h. CRITICAL 72 h (bad, 5th-8th) + 8 h (probe fails the 14th 06:00-14:00) = 80 h;
  the probe also fails the 18th 00:00-12:00 but in scheduled downtime: DOWNTIME 12 h. MISSING 22 h: the
  last push before the silence was at 08:59:59 on the 12th, so the result goes stale (> 7200 s) at 11:00
  and stays stale until the push at 08:59:59 on the 13th. UP = 714 - 80 - 12 - 22 = 600 h.
- BES.GAMMA.cn: first seen the 16th 00:00, so 15 days = 360 h - 6 h = 354 h seen. CRITICAL 10 h (20th
  00:00-10:00), UNKNOWN 5 h (busy, 22nd 13:00-18:00). UP = 354 - 15 = 339 h.

Availability = UP / (UP + CRITICAL + DOWNTIME), reliability = UP / (UP + CRITICAL),
unknown = (UNKNOWN + MISSING) / seen.
"""

from __future__ import annotations

import csv
import shutil

import backfill
import month
import pytest
from conftest import run_report

from bes_demo import services
from bes_report import argo
from bes_report.figures import collect
from bes_report.period import Period, between
from bes_report.prom import Prometheus

ALPHA, BETA, GAMMA, DELTA = month.ALPHA, month.BETA, month.GAMMA, month.DELTA
HOURS = {  # up, critical, unknown, missing, downtime, seen
    ALPHA: (635, 4, 3, 0, 72, 714),
    BETA: (600, 80, 0, 22, 12, 714),
    GAMMA: (339, 10, 5, 0, 0, 354),
}
EXPECTED = {
    ALPHA: {"availability": 635 / 711, "reliability": 635 / 639, "unknown_fraction": 3 / 714},  # 89.31 %, 99.37 %
    BETA: {"availability": 600 / 692, "reliability": 600 / 680, "unknown_fraction": 22 / 714},  # 86.71 %, 88.24 %
    GAMMA: {"availability": 339 / 349, "reliability": 339 / 349, "unknown_fraction": 5 / 354},  # 97.13 %
}
# Jobs, from month.COUNTERS (instance "bes"). BES.ALPHA.cn's exporter restarted at the 15th 12:00: its
# counters lose that hour's increment, so they count 719 of the 720 hours.
JOBS = {  # done (Done + Completed), failed, top reasons
    ALPHA: (719 * (12 + 1), 719 * 3, "application_error:1438;cpu_limit:719"),
    BETA: (720 * 5, 720 * 2, "stalled_pilot_not_running:1440"),
    GAMMA: (360 * 20, 0, ""),  # from the 16th, 360 hours
    DELTA: (720 * 3, 0, ""),
}
PILOTS = {  # done, failed + aborted (Deleted is neither)
    ALPHA: (720 * 20, 720 * 2), BETA: (720 * 4, 720 * 4), GAMMA: (360 * 6, 0), DELTA: (0, 0),
}


@pytest.fixture(scope="module")
def rows(month_report) -> dict[str, dict[str, str]]:
    with open(month_report.out / "report.csv", newline="") as fh:
        return {row["site"]: row for row in csv.DictReader(fh)}


def test_rows_are_the_real_sites(rows):
    """Every site of the instance, DIRAC's placeholder ANY left out; a site without probes has a row."""
    assert sorted(rows) == sorted([ALPHA, BETA, GAMMA, DELTA])


@pytest.mark.parametrize("site", [ALPHA, BETA, GAMMA])
def test_availability_reliability_unknown(rows, site):
    row = rows[site]
    for column, value in EXPECTED[site].items():
        assert float(row[column]) == pytest.approx(value, abs=1e-4), column  # 0.01 %: well within 0.1 %
    up, critical, unknown, missing, downtime, seen = HOURS[site]
    for column, hours in (("up_hours", up), ("critical_hours", critical), ("unknown_hours", unknown),
                          ("missing_hours", missing), ("downtime_hours", downtime)):
        assert float(row[column]) == pytest.approx(hours, abs=1e-3), column  # exact: not one sample more or less
    assert float(row["monitored_fraction"]) == pytest.approx(seen / 720, abs=1e-6)


def test_site_without_probes(rows):
    row = rows[DELTA]
    assert row["availability"] == row["reliability"] == row["unknown_fraction"] == row["downtime_hours"] == ""
    assert row["targets_met"] == ""


def test_targets(rows, month_report):
    assert [rows[s]["targets_met"] for s in (ALPHA, BETA, GAMMA)] == ["no", "no", "yes"]
    assert month_report.stdout.splitlines()[0] == (
        "2 sites below target (of 3 with probe results): BES.ALPHA.cn (availability 89.3 % < 90 %); "
        "BES.BETA.cn (availability 86.7 % < 90 %, reliability 88.2 % < 95 %).")


@pytest.mark.parametrize("site", sorted(JOBS))
def test_jobs_and_pilots(rows, site):
    """Counter resets, a site that appears mid-month and Killed jobs; the other DIRAC instance left out."""
    done, failed, reasons = JOBS[site]
    row = rows[site]
    assert (int(row["jobs_done"]), int(row["jobs_failed"]), row["top_failure_reasons"]) == (done, failed, reasons)
    ratio = failed / (done + failed)
    assert float(row["job_failure_ratio"]) == pytest.approx(ratio, abs=1e-6)
    p_done, p_failed = PILOTS[site]
    assert (int(row["pilots_done"]), int(row["pilots_failed"])) == (p_done, p_failed)
    if p_done + p_failed:
        assert float(row["pilot_failure_ratio"]) == pytest.approx(p_failed / (p_done + p_failed), abs=1e-6)
    else:
        assert row["pilot_failure_ratio"] == ""


def test_black_hole_nodes(rows, month_report):
    """wn01.alpha.cn failed fast for 3 h while the rest of its site was fine; BETA's nodes failed together."""
    assert rows[ALPHA]["black_hole_hosts"] == "wn01.alpha.cn"
    assert rows[BETA]["black_hole_hosts"] == rows[GAMMA]["black_hole_hosts"] == ""
    sites = {s.site: s for s in month_report.report.sites}
    (host, seconds), = sites[ALPHA].black_holes
    assert host == "wn01.alpha.cn" and 2 * 3600 <= seconds <= 4 * 3600
    assert sites[BETA].black_holes == [] and sites[GAMMA].black_holes is None  # GAMMA has no per-node counters


def test_worst_hours(month_report):
    """BETA's worst stretches: most CRITICAL first, then the MISSING day."""
    beta = next(s for s in month_report.report.sites if s.site == BETA)
    worst = argo.worst(beta.state_bins, month_report.report.period.base_edges())
    got = [(w.start, w.end, w.seconds["critical"] / 3600, w.seconds["missing"] / 3600) for w in worst]
    assert got == [(month.at(5), month.at(8), 72, 0), (month.at(14, 6), month.at(14, 14), 8, 0),
                   (month.at(12, 11), month.at(13, 9), 0, 22)]


def test_without_instance_every_instance_counts(month_prometheus):
    """Without --instance the jobs of both instances add up (100 Done an hour at ALPHA in 'other')."""
    p = Period(month.START, month.END, month.MONTH)
    alpha = next(s for s in collect(month_prometheus.client(), p).sites if s.site == ALPHA)
    assert alpha.jobs_done == 719 * 13 + 720 * 100


@pytest.mark.parametrize("site,start,end,hours", [
    # ALPHA's CRITICAL stretch alone: minute bins; the samples at its edges belong to one side only.
    (ALPHA, "2026-11-03T12:00", "2026-11-03T16:00", {"critical": 4}),
    # The day Prometheus was down 6 h: 18 h seen, all UP.
    (ALPHA, "2026-11-25", "2026-11-26", {"up": 18}),
    # The day around GAMMA's first probe result: 12 h seen.
    (GAMMA, "2026-11-15T12:00", "2026-11-16T12:00", {"up": 12}),
])
def test_sub_periods(month_prometheus, site, start, end, hours):
    p = between(start, end, now=month.END + 86400)
    figures = next(s for s in collect(month_prometheus.client(), p, instance="bes").sites if s.site == site)
    assert {k: v / 3600 for k, v in figures.states.items() if v} == hours


def test_unknown_site_instance_and_empty_period_exit_2(month_prometheus):
    for args, needle in ((["--sites", "BES.NOPE.cn"], "--sites BES.NOPE.cn: no data for this site"),
                         (["--instance", "nope"], "--instance nope: no bes-exporter series"),
                         (["--month", "2026-09"], "no bes-monitoring series")):
        done = run_report(*month_prometheus.args(), *(["--month", month.MONTH] if "--month" not in args else []),
                          *args)
        assert done.returncode == 2 and needle in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_too_many_samples_for_one_query(month_prometheus, tmp_path):
    """A Prometheus that refuses to load a month of counter samples at once: the report sums days instead
    (exact here but for the outage of the 25th at a day's edge) and says so."""
    # 8500: less than a month of one series (8929 samples at 5 min), more than any other query reads.
    shutil.copytree(month_prometheus.data_dir, tmp_path / "tsdb", ignore=shutil.ignore_patterns("lock"))
    small = services.prometheus(month_prometheus.config, tmp_path,
                                extra_args=[*backfill.PROM_ARGS, "--query.max-samples=8500"])
    small.start(timeout=60)
    try:
        p = Period(month.START, month.END, month.MONTH)
        report = collect(Prometheus(small.url), p, instance="bes")
    finally:
        small.stop()
    assert any("summed a day at a time" in note for note in report.notes), report.notes
    sites = {s.site: s for s in report.sites}
    assert sites[BETA].jobs_failed == pytest.approx(720 * 2, rel=0.01)
    assert sites[ALPHA].jobs_done == pytest.approx(719 * 13, rel=0.01)
    assert [h for h, _ in sites[ALPHA].black_holes] == ["wn01.alpha.cn"]
