"""First client steps once the services answer: ``python -m dirac_server.bootstrap STEP INSTANCE_DIR``.

``credentials``:

* a proxy per user, with its DIRAC group (what ``dirac-proxy-init -g GROUP`` makes); the user's and the
  probe agents' long proxies uploaded to the ProxyManager (as ``dirac-proxy-init`` does), so a generic
  pilot's JobAgent can fetch the payload proxy of the job owner;
* every site, CE and the sandbox SE ``Active`` in ResourceStatus (the Matcher and JobScheduling read the
  site mask there, DIRAC's StorageElement the SE's access), written with the host certificate.

``first-job`` (once the optimizers run): :func:`first_job`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from . import topology as topo
from .layout import Layout

PROXY_SECONDS = 7 * 86400
WARM_UP_TIMEOUT = 120
SE_ACCESS = ("ReadAccess", "WriteAccess", "CheckAccess", "RemoveAccess")
IDENTITIES = ((topo.USER, topo.USER_GROUP, True), (topo.PROBE_USER, topo.PROBE_GROUP, True),
              (topo.PILOT_USER, topo.PILOT_GROUP, False))


class BootstrapError(Exception):
    """A DIRAC call failed (one line)."""


def _ok(result: dict, what: str):
    if not result.get("OK"):
        raise BootstrapError(f"{what}: {' '.join(str(result.get('Message')).split())[:300]}")
    return result.get("Value")


def make_proxies(layout: Layout) -> None:
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData
    from DIRAC.Core.Security.X509Chain import X509Chain
    from DIRAC.FrameworkSystem.Client.ProxyManagerClient import gProxyManager

    for user, group, upload in IDENTITIES:
        chain = X509Chain()
        _ok(chain.loadChainFromFile(str(layout.user_cert(user))), f"loading {user}'s certificate")
        _ok(chain.loadKeyFromFile(str(layout.user_key(user))), f"loading {user}'s key")
        proxy = layout.proxy(user)
        proxy.parent.mkdir(parents=True, exist_ok=True)
        _ok(chain.generateProxyToFile(str(proxy), PROXY_SECONDS, diracGroup=group), f"{user}'s proxy")
        proxy.chmod(0o600)
        if not upload:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "plain.pem"
            _ok(chain.generateProxyToFile(str(plain), PROXY_SECONDS), f"{user}'s proxy without group")
            # The upload is the user's own act: connect with that proxy, not the host certificate.
            gConfigurationData.setOptionInCFG("/DIRAC/Security/UseServerCertificate", "no")
            os.environ["X509_USER_PROXY"] = str(plain)
            try:
                _ok(gProxyManager.uploadProxy(str(plain)), f"uploading {user}'s proxy to the ProxyManager")
            finally:
                del os.environ["X509_USER_PROXY"]
                gConfigurationData.setOptionInCFG("/DIRAC/Security/UseServerCertificate", "yes")


def allow_resources() -> None:
    """Sites, CEs and the sandbox SE ``Active`` in ResourceStatus (what ``dirac-rss-sync --init`` does)."""
    from DIRAC.ResourceStatusSystem.Client.ResourceStatusClient import ResourceStatusClient

    client = ResourceStatusClient(useCertificates=True)
    elements = [("Site", site.name, "Site", "all") for site in topo.SITES]
    elements += [("Resource", site.ce, "ComputingElement", "all") for site in topo.SITES]
    elements += [("Resource", topo.SANDBOX_SE, "StorageElement", access) for access in SE_ACCESS]
    for element, name, element_type, status_type in elements:
        _ok(client.addOrModifyStatusElement(element, "Status", name=name, statusType=status_type, status="Active",
                                            elementType=element_type, reason="dirac-server: allowed at start",
                                            tokenOwner="rs_svc"), f"allowing {element_type} {name}")


def first_job(layout: Layout, timeout: float = WARM_UP_TIMEOUT) -> None:
    """The instance's first job, the user's, at a site without worker node: through the JobManager and the
    optimizers (JobPath, JobSanity, JobScheduling) to Waiting, then deleted. It proves the WMS chain works,
    and it makes the OptimizationMind open its databases with one job alone: DIRAC 9.1's JobState marks its
    DB access ready before opening it, so OptimizeJobs messages served at once by a fresh Mind fail
    ("'NoneType' object has no attribute 'getJobAttributes'") and leave their jobs Received for a minute."""
    from DIRAC.ConfigurationSystem.Client.ConfigurationData import gConfigurationData
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.Interfaces.API.Job import Job

    site = next((s for s in topo.SITES if not s.worker), topo.SITES[0])
    gConfigurationData.setOptionInCFG("/DIRAC/Security/UseServerCertificate", "no")
    os.environ["X509_USER_PROXY"] = str(layout.proxy(topo.USER))
    try:
        job = Job()
        job.setName("dirac-server-first-job")
        job.setExecutable("/bin/true")
        job.setDestination(site.name)
        job_id = _ok(Dirac().submitJob(job), "submitting the first job")
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = _ok(Dirac().getJobStatus(job_id), "the first job's status")[job_id]["Status"]
            if status not in ("Received", "Checking"):
                break
            time.sleep(0.5)
        else:
            raise BootstrapError(f"the first job ({job_id}) is still {status} after {timeout:.0f} s: the optimizers"
                                 " did not process it (see logs/optimizers.log)")
        _ok(Dirac().deleteJob(job_id), "deleting the first job")
    finally:
        del os.environ["X509_USER_PROXY"]
        gConfigurationData.setOptionInCFG("/DIRAC/Security/UseServerCertificate", "yes")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("credentials", "first-job"):
        print("usage: python -m dirac_server.bootstrap {credentials|first-job} INSTANCE_DIR", file=sys.stderr)
        return 2
    layout = Layout(Path(argv[1]))
    import DIRAC

    DIRAC.initialize(extra_config_files=[str(layout.client_cfg)],
                     host_credentials=(str(layout.host_cert), str(layout.host_key)))
    try:
        if argv[0] == "credentials":
            make_proxies(layout)
            allow_resources()
        else:
            first_job(layout)
    except BootstrapError as exc:
        print(f"dirac-server bootstrap: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
