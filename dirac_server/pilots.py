"""The worker nodes: ``python -m dirac_server.pilots INSTANCE_DIR`` keeps one pilot running per worker site.

It plays the SiteDirector and the batch system of the sites that have a worker node: it registers
each pilot in PilotAgentsDB through the PilotManager (``Submitted`` at its site and CE), starts DIRAC's
JobAgent with the pilot's proxy (group with ``GenericPilot``: the JobAgent fetches each job owner's
proxy from the ProxyManager) and an ``InProcess`` computing element, and marks the pilot ``Done``
(``Failed`` on a non-zero exit) when the JobAgent ends. A JobAgent ends after a few cycles without a
match (``StopAfterFailedMatches``) and the next pilot starts at once, so a new job is picked up within
seconds. Stops (with its JobAgents and their payloads, one process group) on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from . import csconfig
from . import topology as topo
from .layout import REPO, Layout

RESTART_DELAY = 1.0
FAILED_RESTART_DELAY = 15.0  # after a pilot that failed within SHORT_LIFE seconds (server down?): no busy loop
SHORT_LIFE = 20.0
MAX_AGENT_SECONDS = 1800  # a pilot's wall-clock limit: a stuck JobAgent is ended


class PilotFactory:
    """One pilot at a time per worker site."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.state = layout.read_state()
        if self.state is None:
            raise SystemExit(f"dirac-server pilots: no state in {layout.base}")
        self.running: dict[str, tuple[subprocess.Popen, str, float]] = {}
        self.next_start: dict[str, float] = {}  # site -> monotonic time its next pilot may start
        self.counter = 0
        self.stopping = False

    def _manager(self):
        from DIRAC.WorkloadManagementSystem.Client.PilotManagerClient import PilotManagerClient

        return PilotManagerClient()

    def _report(self, what: str, result: dict) -> None:
        if not result.get("OK"):
            print(f"dirac-server pilots: {what}: {result.get('Message')}", file=sys.stderr, flush=True)

    def launch(self, site: topo.Site) -> None:
        self.counter += 1
        ref = f"dirac-server://{site.ce}/{os.getpid()}-{self.counter}"
        root = self.layout.pilot_root(site.name)
        work = root / "work"
        work.mkdir(parents=True, exist_ok=True)
        csconfig.write(csconfig.worker_local(self.layout, self.state, site, ref), root / "etc" / "dirac.cfg")
        manager = self._manager()
        self._report("registering pilot", manager.addPilotReferences([ref], topo.VO, "DIRAC", {ref: ref[-32:]}))
        self._report("pilot status Submitted", manager.setPilotStatus(ref, "Submitted", site.ce, "", site.name,
                                                                        topo.QUEUE))
        env = dict(os.environ)
        # DIRAC's job wrapper runs on os.path.realpath(sys.executable): the base interpreter, not the venv's,
        # so the venv's packages go on its PYTHONPATH (a DIRACOS install has no such indirection).
        paths = [str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], env.get("PYTHONPATH")]
        env.update({"DIRAC_ROOT_PATH": str(root), "X509_USER_PROXY": str(self.layout.proxy(topo.PILOT_USER)),
                    "PYTHONPATH": os.pathsep.join(dict.fromkeys(filter(None, paths)))})
        with open(self.layout.logs / f"jobagent-{site.name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dirac_server.run", "agent", str(self.layout.base),
                                     "WorkloadManagement/JobAgent"], cwd=work, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.running[site.name] = (proc, ref, time.monotonic())

    def reap(self) -> None:
        for site, (proc, ref, started) in list(self.running.items()):
            if proc.poll() is None and time.monotonic() - started > MAX_AGENT_SECONDS:
                proc.terminate()
            if proc.poll() is None:
                continue
            status = "Done" if proc.returncode == 0 else "Failed"
            self._report(f"pilot status {status}", self._manager().setPilotStatus(ref, status))
            del self.running[site]
            lived = time.monotonic() - started
            delay = FAILED_RESTART_DELAY if status == "Failed" and lived < SHORT_LIFE else RESTART_DELAY
            self.next_start[site] = time.monotonic() + delay

    def loop(self) -> None:
        while not self.stopping:
            self.reap()
            for site in topo.worker_sites():
                due = self.next_start.get(site.name, 0.0) <= time.monotonic()
                if site.name not in self.running and due and not self.stopping:
                    self.launch(site)
            time.sleep(RESTART_DELAY)
        for proc, _ref, _started in self.running.values():
            proc.terminate()
        for proc, _ref, _started in self.running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stop(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stopping = True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dirac_server.pilots INSTANCE_DIR", file=sys.stderr)
        return 2
    layout = Layout(Path(argv[0]))
    import DIRAC

    DIRAC.initialize(extra_config_files=[str(layout.client_cfg)],
                     host_credentials=(str(layout.host_cert), str(layout.host_key)))
    factory = PilotFactory(layout)
    signal.signal(signal.SIGTERM, factory.stop)
    signal.signal(signal.SIGINT, factory.stop)
    factory.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
