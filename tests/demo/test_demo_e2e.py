"""`make demo` end to end: every fault scenario in one time-accelerated run, checked through Alertmanager.

One module-scoped demo (``python -m bes_demo up``, exactly what ``make demo`` runs) on free
loopback ports, its own databases and directory, with the default fault timeline
(``bes_demo/timeline.yml``): the simulator (DIRAC 8.0, 60x), the exporter, a Pushgateway, the
probe agents running the real probe through DIRAC's job wrapper, Prometheus with the demo rules and
Alertmanager. The test polls Alertmanager's API (bounded) until every scenario's alert has arrived for
its own site/CE/host (or owner), checks that the sites hit by no fault stayed quiet until the central
failure and that the central failure pages once and first, that each failure is blamed on the right party
(issue #18: a user's broken workflow pages no site and no central failure, a site missing a group's release
is paged as the site's fault and named by group, a black-hole node pages no site), runs the lead-time
report (no page in the wrong place) and the printed ``bes-report`` command, and finally checks that
``down`` leaves nothing running or listening. About 5 minutes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from dirac_instance import root_conn

from bes_demo.services import free_port

pytest.importorskip("DIRAC", reason="DIRAC is not installed: run scripts/install-dirac.sh (make dirac)")

ROOT = Path(__file__).resolve().parents[2]
# scenario -> (alert names that count, labels the alert must carry): bes_demo/timeline.yml
EXPECTED = {
    "black-hole-host": ({"DiracBlackHoleHost"}, {"site": "BES.USTC.cn", "host": "wn017.ustc.edu.cn"}),
    "no-matching": ({"DiracSiteNotMatching"}, {"site": "GRID.IHEP.cn"}),
    "cvmfs-broken": ({"DiracProbeFailing"}, {"site": "BES.SJTU.cn"}),
    "pilot-abort": ({"DiracPilotFailureRatioRising", "DiracPilotsFailing"},
                    {"site": "BES.IHEP-PBS.cn", "ce": "pbsce01.ihep.ac.cn"}),
    "heartbeat-loss": ({"DiracHeartbeatLagRising"}, {"site": "BES.JINR.ru"}),
    "user-broken": ({"DiracUserJobsFailing"}, {"owner": "zhaojy", "blame": "user"}),
    "site-software": ({"DiracSiteJobFailureRatioHigh", "DiracSiteJobFailureRatioCritical"},
                      {"site": "CLOUD.IHEP-OPENSTACK.cn", "blame": "site"}),
    "central-failure": ({"DiracCentralFailure"}, {}),
}
SITE_FAILING = {"DiracSiteJobFailureRatioHigh", "DiracSiteJobFailureRatioCritical"}
BLAME = ("user-broken", "site-software", "black-hole-host")  # issue #18: no page in the wrong place
# Sites no per-site fault touches: no alert about them before the central failure starts (the broken
# workflow's jobs that are not sent to CLUSTER.USTC.cn fail at some of them: that is the user's fault).
QUIET = {"BES.UCAS.cn", "BES.WHU.cn", "BES.PKU.cn", "BES.SDU.cn", "BES.HNU.cn", "BES.UMN.us", "GRID.INFN-Torino.it",
         "CLUSTER.SYSU.cn"}
UP_TIMEOUT = 240  # real seconds for `up`
RUN_TIMEOUT = 330  # real seconds after `up` for every scenario's alert
# At 60x a simulator stalled for L real seconds leaves every heartbeat L simulated minutes late: from
# L = 3 s on, 10 % of the running jobs of every site look like a network cut. That is the test bench
# (a machine too busy for the simulator), not the rules: such alerts on quiet sites are reported, not failed.
STALL_SECONDS = 3  # the simulator itself notes every stall of 2 s or more in its events file


def _epoch(ts: str) -> float:
    head = ts.replace("Z", "").split(".")[0]
    return dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp()


def _demo(env: dict[str, str], command: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bes_demo", command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _get(url: str) -> list | dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _drop(prefix: str) -> None:
    conn = root_conn()
    with conn.cursor() as cur:
        for name in ("JobDB", "PilotAgentsDB", "JobLoggingDB", "ResourceStatusDB", "bes_simulate"):
            cur.execute(f"DROP DATABASE IF EXISTS `{prefix}{name}`")
    conn.close()


class Run:
    """The running demo and what the test saw of it."""

    def __init__(self, directory: Path, env: dict[str, str], ports: dict[str, int], prefix: str):
        self.dir, self.env, self.ports, self.prefix = directory, env, ports, prefix
        self.up_output = ""
        self.stalls: list[float] = []  # when the simulator was seen STALL_SECONDS or more behind the clock
        self.seen: dict[str, dict] = {}  # fingerprint@startsAt -> alert, every state seen

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def events(self) -> dict:
        return json.loads((self.dir / "simulator" / "events.json").read_text())

    def simulator_lag(self) -> None:
        """Record a stall: the newest job update is older than STALL_SECONDS on the database clock."""
        conn = root_conn()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT TIMESTAMPDIFF(SECOND, MAX(LastUpdateTime), UTC_TIMESTAMP()) "
                            f"FROM `{self.prefix}JobDB`.Jobs")
                (lag,) = cur.fetchone()
        finally:
            conn.close()
        if lag is not None and lag >= STALL_SECONDS:
            self.stalls.append(time.time())

    def stalled_before(self, when: float) -> bool:
        return any(when - 90 <= t <= when + 5 for t in self.stalls)

    def poll(self) -> list[dict]:
        alerts = _get(self.url("alertmanager") + "/api/v2/alerts?active=true&inhibited=true&silenced=true")
        for a in alerts:
            key = f"{a['fingerprint']}@{a['startsAt']}"
            old = self.seen.get(key)
            states = (old or {}).get("states", set()) | {a["status"]["state"]}
            self.seen[key] = {**a, "states": states}
        return alerts

    def found(self, scenario: str) -> dict | None:
        names, labels = EXPECTED[scenario]
        for a in self.seen.values():
            if a["labels"].get("alertname") in names and "active" in a["states"] \
                    and all(a["labels"].get(k) == v for k, v in labels.items()):
                return a
        return None


@pytest.fixture(scope="module")
def run(tmp_path_factory, mariadb):
    directory = tmp_path_factory.mktemp("demo")
    prefix = f"bes_demo_t{uuid.uuid4().hex[:8]}_"
    ports = {name: free_port() for name in ("exporter", "pushgateway", "prometheus", "alertmanager")}
    env = dict(os.environ, BES_DEMO_DIR=str(directory), BES_DEMO_DB_PREFIX=prefix,
               **{f"BES_DEMO_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    for name in ("BES_DEMO_SPEED", "BES_DEMO_SCALE", "BES_DEMO_TIMELINE", "BES_DEMO_PROBE_SITES", "BES_DEMO_WARMUP",
                 "BES_DEMO_PROBE_BACKEND"):
        env.pop(name, None)  # the shipped defaults
    r = Run(directory, env, ports, prefix)
    try:
        up = _demo(env, "up", UP_TIMEOUT)
        r.up_output = up.stdout + up.stderr
        assert up.returncode == 0, r.up_output[-2000:]
        yield r
    finally:
        _demo(env, "down", 120)
        _drop(prefix)


def test_every_printed_page_opens_in_a_browser(run):
    """Each printed URL but the Alertmanager API (Debian's build has no UI) answers 200 with a page."""
    pages = {}
    for line in run.up_output.splitlines():
        name, _, rest = line.partition(": ")
        words = rest.split()
        if words and words[0].startswith("http://") and name != "alertmanager":
            pages[name] = words[0]
    assert set(pages) == {"exporter", "pushgateway", "prometheus", "alerts (pending and firing)"}, pages
    for name, url in pages.items():
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode(errors="replace")
            assert resp.status == 200, (name, url, resp.status)
        assert "no web application" not in body and "404 page not found" not in body, (name, url, body[:200])
        expect = {"exporter": "dirac_up ", "pushgateway": "<html", "prometheus": "<html",
                  "alerts (pending and firing)": "DiracCentralFailure"}[name]
        assert expect in body, (name, url, body[:300])


def _simulator_alive(r: Run) -> None:
    log = r.dir / "logs" / "simulator.log"
    assert (r.dir / "run" / "simulator.pid").exists(), log.read_text()[-1500:]
    pid = int((r.dir / "run" / "simulator.pid").read_text())
    assert Path(f"/proc/{pid}").exists(), f"the simulator died: {log.read_text()[-1500:]}"


def test_up_prints_the_urls_and_a_second_up_starts_nothing(run):
    for name in ("exporter", "pushgateway", "prometheus", "alertmanager"):
        assert f"{name}: {run.url(name)}" in run.up_output
    assert f"amtool alert query --alertmanager.url={run.url('alertmanager')}" in run.up_output
    assert "--report" in run.up_output
    pids = {p.name: p.read_text() for p in (run.dir / "run").glob("*.pid")}
    again = _demo(run.env, "up", 60)
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert {p.name: p.read_text() for p in (run.dir / "run").glob("*.pid")} == pids
    assert _demo(run.env, "status", 30).returncode == 0


def test_every_scenario_alerts_its_own_target_and_other_sites_stay_quiet(run):
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run.poll()
        run.simulator_lag()
        if all(run.found(s) for s in EXPECTED):
            break
        _simulator_alive(run)
        time.sleep(2)
    ev = run.events()
    missing = [s for s in EXPECTED if not run.found(s)]
    seen = sorted({(a["labels"].get("alertname"), a["labels"].get("site")) for a in run.seen.values()})
    assert not missing, f"no alert for {missing} within {RUN_TIMEOUT} s; seen: {seen}"
    starts = {sc["name"]: _epoch(sc["started"]["utc"]) for sc in ev["scenarios"]}
    for scenario in EXPECTED:  # each alert came after its own fault began
        assert _epoch(run.found(scenario)["startsAt"]) >= starts[scenario] - 1, scenario
    central = starts["central-failure"]
    run.stalls += [_epoch(e["real_utc"]) for e in ev["log"] if e["event"] == "behind the database clock"]
    early = [a for a in run.seen.values() if a["labels"].get("site") in QUIET and _epoch(a["startsAt"]) < central]
    bench = [a for a in early if a["labels"]["alertname"] == "DiracHeartbeatLagRising"
             and run.stalled_before(_epoch(a["startsAt"]))]
    if bench:
        print(f"simulator stalls (machine too busy) made {len(bench)} heartbeat alerts on quiet sites")
    noisy = sorted({(a["labels"]["alertname"], a["labels"]["site"]) for a in early if a not in bench})
    assert not noisy, f"alerts about sites without a fault before the central failure: {noisy}"
    # The central failure pages once, and first: the rules hold the per-site job alerts it explains, so no
    # site job-failure page starts once it has begun.
    site_pages = sorted({(a["labels"]["site"], a["startsAt"]) for a in run.seen.values()
                         if a["labels"]["alertname"].startswith("DiracSiteJobFailureRatio") and "active" in a["states"]
                         and _epoch(a["startsAt"]) >= central})
    assert not site_pages, f"site job pages during the central failure: {site_pages}"


def _during(alert: dict, sc: dict) -> bool:
    """The alert started while the scenario lasted."""
    t = _epoch(alert["startsAt"])
    return _epoch(sc["started"]["utc"]) - 1 <= t <= _epoch(sc["ended"]["utc"]) if sc.get("ended") else False


def test_failures_are_blamed_on_the_right_party(run):
    """Issue #18: a user's broken workflow is the user's, a missing release the site's, a black hole the node's."""
    ev = run.events()
    scenarios = {sc["name"]: sc for sc in ev["scenarios"]}
    ub, sw, bh = (scenarios[name] for name in BLAME)
    assert ub["ended"] and sw["ended"] and bh["ended"], "the blame faults last until before the central failure"
    seen = [a for a in run.seen.values() if "active" in a["states"]]
    # The user-broken owner is named; no site where its jobs failed is paged for them, no central failure.
    found = run.found("user-broken")
    assert found and found["labels"]["owner"] == ub["target"]["owner"], "no DiracUserJobsFailing for the owner"
    others = {sc["target"].get("site") for sc in ev["scenarios"] if sc["name"] in BLAME + ("heartbeat-loss",)}
    touched = ({ub["params"]["site"]} | set(ub["owner_failures"]["sites"])) - others  # less faults failing jobs
    paged = sorted({a["labels"]["site"] for a in seen if a["labels"].get("alertname") in SITE_FAILING
                    and a["labels"].get("site") in touched and _during(a, ub)})
    assert not paged, f"sites paged for {ub['target']['owner']}'s broken workflow: {paged}"
    assert not [a for a in seen if a["labels"].get("alertname") == "DiracCentralFailure" and _during(a, ub)]
    # The site missing bes_prod's release is paged as the site's fault, and the alert names the group.
    site_alert = run.found("site-software")
    assert site_alert, f"no job-failure alert for {sw['target']['site']}"
    assert sw["params"]["group"] in site_alert["annotations"]["description"], site_alert["annotations"]
    # A black-hole node is the node's: DiracBlackHoleHost (EXPECTED), no job-failure alert for its site.
    bh_site = [a["labels"]["alertname"] for a in seen if a["labels"].get("alertname") in SITE_FAILING
               and a["labels"].get("site") == bh["target"]["site"] and _during(a, bh)]
    assert not bh_site, f"{bh['target']['site']} paged for its black-hole node: {bh_site}"


def test_alert_log_and_lead_time_report(run):
    wanted = {"DiracBlackHoleHost", "DiracSiteNotMatching", "DiracProbeFailing", "DiracHeartbeatLagRising",
              "DiracCentralFailure"}
    names: set[str] = set()
    for _ in range(20):  # the log polls Alertmanager every 2 s: give it a few polls to catch up with the test
        names = {a["labels"]["alertname"] for a in json.loads((run.dir / "alerts.json").read_text())}
        if names >= wanted:
            break
        time.sleep(1)
    assert names >= wanted, wanted - names
    done = subprocess.run([str(Path(sys.executable).parent / "bes-simulate"), "--report", "--json", "--events",
                           str(run.dir / "simulator" / "events.json"), "--alerts", str(run.dir / "alerts.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {r["scenario"]: r for r in json.loads(done.stdout)}
    table = subprocess.run([str(Path(sys.executable).parent / "bes-simulate"), "--report", "--events",
                            str(run.dir / "simulator" / "events.json"), "--alerts", str(run.dir / "alerts.json")],
                           capture_output=True, text=True, timeout=60)
    print(table.stdout)  # the table quoted in docs/demo.md comes from a run like this one (pytest -s)
    assert set(rows) == set(EXPECTED)
    for scenario, row in rows.items():
        assert row["alert"] in EXPECTED[scenario][0], (scenario, row)
    assert rows["black-hole-host"]["host_failures_before_alert"] < 50
    # The slow degradations are flagged well before DIRAC acts (docs/demo.md quotes the measured leads
    # against the 30-min target; the heartbeat's is 36 min by design, less the 2-simulated-minute steps of
    # scraping and evaluation at 60x, so the margin kept here is smaller).
    hb = rows["heartbeat-loss"]
    assert hb["dirac_reacts"].startswith("StalledJobAgent:Stalled") and hb["dirac_reacts_lead"] >= 25 * 60, hb
    pilots = rows["pilot-abort"]
    assert pilots["dirac_reacts"].startswith("RSS:PilotEfficiency") and pilots["dirac_reacts_lead"] >= 30 * 60, pilots
    # No page went to the wrong place for the blame faults (the report's classification, issue #18).
    assert {s: rows[s]["wrong_place"] for s in BLAME} == dict.fromkeys(BLAME, [])


def test_report_of_the_last_simulated_day(run):
    """The printed bes-report command, run as printed, reports the probed sites; BES.SJTU.cn's broken CVMFS
    (alerted by now, see above) shows as CRITICAL time."""
    line = next(x for x in run.up_output.splitlines() if x.startswith("report of the last simulated day: "))
    cmd = shlex.split(line.partition(": ")[2])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = Path(cmd[cmd.index("--out") + 1])
    assert (out / "report.pdf").stat().st_size > 10_000 and (out / "report.html").stat().st_size > 10_000
    with open(out / "report.csv", newline="") as fh:
        rows = {r["site"]: r for r in csv.DictReader(fh)}
    probed = {"BES.IHEP-PBS.cn", "BES.USTC.cn", "BES.JINR.ru", "BES.SJTU.cn"}  # BES_DEMO_PROBE_SITES
    assert {s for s, r in rows.items() if r["availability"]} == probed, rows
    assert float(rows["BES.SJTU.cn"]["critical_hours"]) > 0
    assert int(rows["BES.IHEP-PBS.cn"]["jobs_done"]) > 0
    assert "wn017.ustc.edu.cn" in rows["BES.USTC.cn"]["black_hole_hosts"].split(";")  # the black-hole scenario


def test_down_leaves_nothing_running_or_listening(run):
    probe_jobs = [json.loads(p.read_text())["pid"]
                  for p in (run.dir / "agents" / "state" / "local").glob("job_*/info.json")]
    pids = [int(p.read_text()) for p in (run.dir / "run").glob("*.pid")] + probe_jobs
    done = _demo(run.env, "down", 120)
    assert done.returncode == 0 and "stopped" in done.stdout, done.stdout + done.stderr
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()
            and not Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1].startswith("Z")]
    assert not left, f"still running after down: {left}"
    marker = str(run.dir).encode()
    others = []
    for proc in Path("/proc").iterdir():  # nothing else that names the demo directory either
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes():
                    others.append(proc.name)
            except OSError:
                pass
    assert not others, f"processes still naming {run.dir}: {others}"
    assert not [name for name, port in run.ports.items() if _listening(port)]
    assert not list((run.dir / "run").glob("*.pid"))
    assert _demo(run.env, "status", 30).returncode == 1
