"""The simulator's accelerated runs, shared by the scenario test modules: three ``--once`` runs at once."""

from __future__ import annotations

import pytest
from sim_helpers import Run, drop, simulate_parallel, small_topology

FAULTS = ("black-hole-host@1h", "pilot-abort@1h", "heartbeat-loss@90m", "no-matching@1h", "cvmfs-broken@1h")
# Blame (issue #18): liuhm's workflow breaks at 1h (30 % of the new jobs, 70 % of them sent to BES.USTC.cn),
# GRID.IHEP.cn loses bes_prod's release at 1h.
BLAME = """scenarios:
  - {name: user-broken, at: 1h, target: liuhm, share: 0.3, site: BES.USTC.cn, concentration: 0.7}
  - {name: site-software, at: 1h, target: GRID.IHEP.cn, group: bes_prod}
"""
# The JobWrapper's reschedules (issue #19): BES.WHU.cn cannot serve input sandboxes for its first 100 minutes; the
# jobs its JDL sends there come back to it until MaxRescheduling fails them.
INPUT_FETCH = "input-fetch:BES.WHU.cn@0+100m"


@pytest.fixture(scope="session")
def runs(mariadb, tmp_path_factory) -> dict[str, Run]:
    """Three runs at once: DIRAC 8.0 (JobParameters, SiteMask) for 7 simulated hours with five faults, RSS
    JobEfficiency off as in stock DIRAC; DIRAC 9.1 (ResourceStatusDB.SiteStatus) for 4 hours with an input-fetch
    fault and a central failure from 2h to 3h; DIRAC 9.1 for 4 hours with the blame faults, RSS decisions only
    recorded (a ban would stop the jobs the tests count). The two 9.1 runs opt in to RSS JobEfficiency."""
    tmp = tmp_path_factory.mktemp("runs")
    (tmp / "blame.yml").write_text(BLAME)
    job_eff = ("--topology", small_topology(tmp / "job_efficiency.yml", job_efficiency=True))
    faults = [a for f in FAULTS for a in ("--scenario", f)]
    out = simulate_parallel(tmp, {
        "old": ("8.0", "7h", *faults),
        "new": ("9.1", "4h", *job_eff, "--scenario", INPUT_FETCH, "--scenario", "central-failure@2h+1h"),
        "blame": ("9.1", "4h", *job_eff, "--timeline", str(tmp / "blame.yml"), "--rss", "record"),
    })
    yield out
    for run in out.values():
        drop(run.prefix)
