"""First client steps once the services answer: ``python -m dirac_server.bootstrap INSTANCE_DIR``.

* a proxy per user, with its DIRAC group (what ``dirac-proxy-init -g GROUP`` makes); the user's and the
  probe agents' long proxies uploaded to the ProxyManager (as ``dirac-proxy-init`` does), so a generic
  pilot's JobAgent can fetch the payload proxy of the job owner;
* every site, CE and the sandbox SE ``Active`` in ResourceStatus (the Matcher and JobScheduling read the
  site mask there, DIRAC's StorageElement the SE's access), written with the host certificate.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from . import topology as topo
from .layout import Layout

PROXY_SECONDS = 7 * 86400
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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dirac_server.bootstrap INSTANCE_DIR", file=sys.stderr)
        return 2
    layout = Layout(Path(argv[0]))
    import DIRAC

    DIRAC.initialize(extra_config_files=[str(layout.client_cfg)],
                     host_credentials=(str(layout.host_cert), str(layout.host_key)))
    try:
        make_proxies(layout)
        allow_resources()
    except BootstrapError as exc:
        print(f"dirac-server bootstrap: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
