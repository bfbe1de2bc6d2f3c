"""Run one DIRAC component of an instance: ``python -m dirac_server.run ROLE INSTANCE_DIR [NAMES...]``.

Roles: ``service`` (DIRAC's ``dirac-service`` with one or more services), ``executor`` (``dirac-executor``),
``agent`` (``dirac-agent``, used for the JobAgent of a worker node, whose DIRAC root is passed in the
environment by pilots.py). The instance directory on the command line lets ``down`` recognise the
processes it may stop.

DISET services listen on every interface (``("", port)``, no option to change it); here the server
transport binds to 127.0.0.1 instead, so the instance stays on loopback.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from .layout import Layout

SCRIPTS = {"service": "dirac-service", "executor": "dirac-executor", "agent": "dirac-agent"}


def _ipv6() -> bool:
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        return False
    return True


def bind_loopback() -> None:
    """Make DISET's server transports listen on 127.0.0.1 only (the SSL transport opens an IPv6 socket
    when it can: there the IPv4-mapped form of 127.0.0.1)."""
    from DIRAC.Core.DISET.private.Protocols import gProtocolDict

    for name, protocol in gProtocolDict.items():
        base = protocol["transport"]
        address = "::ffff:127.0.0.1" if name == "dips" and _ipv6() else "127.0.0.1"

        class LoopbackTransport(base):  # type: ignore[misc, valid-type]
            def __init__(self, stServerAddress, bServerMode=False, _address=address, **kwargs):
                if bServerMode and not stServerAddress[0]:
                    stServerAddress = (_address, *stServerAddress[1:])
                super().__init__(stServerAddress, bServerMode=bServerMode, **kwargs)

        protocol["transport"] = LoopbackTransport


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in SCRIPTS:
        print("usage: python -m dirac_server.run {service|executor|agent} INSTANCE_DIR NAME...", file=sys.stderr)
        return 2
    role, base, names = argv[0], Path(argv[1]), argv[2:]
    if role != "agent":
        os.environ["DIRAC_ROOT_PATH"] = str(Layout(base).root)
    bind_loopback()
    sys.argv = [SCRIPTS[role], *names]
    if role == "service":
        from DIRAC.Core.scripts.dirac_service import main as dirac_main
    elif role == "executor":
        from DIRAC.Core.scripts.dirac_executor import main as dirac_main
    else:
        from DIRAC.Core.scripts.dirac_agent import main as dirac_main
    dirac_main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
