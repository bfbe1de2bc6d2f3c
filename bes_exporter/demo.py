"""`make demo` / `make demo-down`: the exporter against a local MariaDB holding DIRAC's schema and a small
generated workload, in the background, logs in .demo/logs. Running `up` twice does not start a second one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pymysql
import yaml

from .dirac_schema import create_databases
from .simulate.writer import Databases, DiracWriter

STATE = Path(os.environ.get("BES_DEMO_DIR", ".demo")).resolve()
DBS = Databases(jobdb="bes_demo_JobDB", pilotdb="bes_demo_PilotAgentsDB", logdb="bes_demo_JobLoggingDB",
                rssdb="bes_demo_ResourceStatusDB", generation="9.1")
EXPORTER_PORT = int(os.environ.get("BES_DEMO_EXPORTER_PORT", "9875"))
SITES = {"BES.IHEP-PBS.cn": "ce01.ihep.ac.cn", "BES.UCAS.cn": "ce.ucas.ac.cn", "BES.USTC.cn": "ce.ustc.edu.cn",
         "BES.WHU.cn": "ce.whu.edu.cn", "BES.JINR.ru": "ce.jinr.ru"}


def _alive(name: str) -> int | None:
    pid_file = STATE / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _prepare_database() -> None:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (DBS.jobdb,))
        exists = cur.fetchone()[0]
    if not exists:
        create_databases(conn, DBS.generation, {"JobDB": DBS.jobdb, "PilotAgentsDB": DBS.pilotdb,
                                                 "JobLoggingDB": DBS.logdb, "ResourceStatusDB": DBS.rssdb})
        w = DiracWriter(conn, DBS)
        for i, (site, ce) in enumerate(SITES.items()):
            w.set_site_status(site, "Banned" if site == "BES.JINR.ru" else "Active")
            for k in range(20 + 5 * i):
                job = w.submit()
                if k % 4 == 0:
                    w.optimize(job)
                    continue
                w.run_to(job, site, "Failed" if (k % 7 == 0 or site == "BES.WHU.cn") else "Done",
                         "Application Finished With Errors")
            for k in range(8):
                pilot = w.submit_pilot(site, ce)
                w.set_pilot_status(pilot, ("Running", "Done", "Aborted", "Waiting")[k % 4])
    conn.close()


def up() -> int:
    STATE.mkdir(exist_ok=True)
    (STATE / "logs").mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{EXPORTER_PORT}/metrics"
    if _alive("exporter"):
        print(f"demo: already running\nexporter: {url}")
        return 0
    _prepare_database()
    config = STATE / "exporter.yml"
    config.write_text(yaml.safe_dump({"database": {"host": "127.0.0.1", "port": 3306, "user": "root",
                                                   "password": "", "jobdb": DBS.jobdb, "pilotdb": DBS.pilotdb,
                                                   "rssdb": DBS.rssdb}}))
    log = open(STATE / "logs" / "exporter.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "bes_exporter", "--config.file", str(config),
                             "--web.listen-address", f"127.0.0.1:{EXPORTER_PORT}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (STATE / "exporter.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            print(f"exporter: {url}\nlogs: {STATE / 'logs'}\nstop with: make demo-down")
            return 0
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    print(f"demo: the exporter did not come up; see {STATE / 'logs' / 'exporter.log'}", file=sys.stderr)
    return 1


def down() -> int:
    for pid_file in sorted(STATE.glob("*.pid")) if STATE.exists() else []:
        pid = _alive(pid_file.stem)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid_file.stem):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
    print("demo: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["up"]:
        return up()
    if args == ["down"]:
        return down()
    print("usage: python -m bes_exporter.demo up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
