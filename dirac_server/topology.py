"""What one server instance holds: its VO, users and groups, sites and CEs, and which sites have a worker node."""

from __future__ import annotations

from dataclasses import dataclass

VO = "bes"
SETUP_NAME = "BESTest"
# DIRAC users (one certificate each): a normal user, the probe agents' identity, the pilots' identity.
USER, PROBE_USER, PILOT_USER = "besuser", "besprobe", "bespilot"
USER_GROUP, PROBE_GROUP, PILOT_GROUP = "bes_user", "bes_prod", "bes_pilot"
QUEUE = "default"
SANDBOX_SE = "ProductionSandboxSE"
QUEUE_CPU_SECONDS = 86400


@dataclass(frozen=True)
class Site:
    """A DIRAC site with one CE; ``worker``: a JobAgent plays its worker node (else jobs wait there)."""

    name: str
    ce: str
    worker: bool

    @property
    def grid(self) -> str:
        return self.name.split(".", 1)[0]


SITES = (
    Site("BES.IHEP-PBS.cn", "ce01.ihep.ac.cn", worker=True),
    Site("BES.USTC.cn", "ce.ustc.edu.cn", worker=False),
    Site("CLUSTER.WHU.cn", "ce.whu.edu.cn", worker=False),
)


def worker_sites() -> list[Site]:
    return [s for s in SITES if s.worker]
