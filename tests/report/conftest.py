"""One real Prometheus holding the known month (tests/report/month.py), served over HTTPS with basic auth,
and one bes-report run on it, shared by the report tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import backfill
import month
import pytest
from services_fixtures import TLSMaterial, make_tls_material, write_web_config

from bes_demo import services
from bes_report.figures import Report, collect
from bes_report.period import month as month_period
from bes_report.prom import Prometheus

BIN = Path(sys.executable).parent
USER, PASSWORD = "reporter", "month-of-november"


@dataclass
class MonthPrometheus:
    daemon: services.Daemon
    tls: TLSMaterial
    password_file: Path
    config: Path
    data_dir: Path  # its TSDB

    @property
    def url(self) -> str:
        return self.daemon.url

    def args(self) -> list[str]:
        """bes-report's connection options."""
        return ["--prometheus", self.url, "--ca-file", str(self.tls.ca), "--user", USER,
                "--password-file", str(self.password_file)]

    def client(self) -> Prometheus:
        return Prometheus(self.url, user=USER, password=PASSWORD, ca_file=str(self.tls.ca))


@dataclass
class MonthReport:
    out: Path
    stdout: str
    report: Report  # the same period collected in-process, for the figures the CSV does not hold


def run_report(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "bes-report"), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def month_prometheus(tmp_path_factory) -> MonthPrometheus:
    work = tmp_path_factory.mktemp("month")
    prom = backfill.build(work, month.write_openmetrics, month.DATA_FROM, month.DATA_TO)
    try:
        tls = make_tls_material(work / "tls")
        web = write_web_config(work / "web.json", tls=tls, users={USER: PASSWORD})
        prom.stop()
        secure = services.prometheus(work / "prometheus" / "prometheus.yml", work / "prometheus", web_config=web,
                                     extra_args=backfill.PROM_ARGS, auth=(USER, PASSWORD))
        secure.start(timeout=60)
    except BaseException:
        prom.stop()
        raise
    pw = work / "password"
    pw.write_text(PASSWORD + "\n")
    yield MonthPrometheus(secure, tls, pw, work / "prometheus" / "prometheus.yml", work / "prometheus" / "tsdb")
    secure.stop()


@pytest.fixture(scope="session")
def month_report(month_prometheus, tmp_path_factory) -> MonthReport:
    out = tmp_path_factory.mktemp("report")
    done = run_report(*month_prometheus.args(), "--month", month.MONTH, "--instance", "bes", "--out", str(out))
    assert done.returncode == 0, done.stderr
    report = collect(month_prometheus.client(), month_period(month.MONTH, now=month.END + 86400), instance="bes")
    return MonthReport(out, done.stdout, report)
