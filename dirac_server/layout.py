"""Where an instance keeps its files, and its recorded state (ports, database names, processes)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / ".cache" / "dirac-server"
DIR_ENV = "BES_DIRAC_SERVER_DIR"


def default_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


@dataclass
class State:
    """What ``up`` started: written to ``state.json``, read by ``status``, ``down`` and the tests."""

    tag: str                                   # unique per instance: database prefix, CS name
    ports: dict[str, int]                      # "Configuration/Server" and every service -> port
    databases: dict[str, str]                  # DIRAC name (JobDB, ...) -> MariaDB database
    processes: dict[str, int] = field(default_factory=dict)  # role -> pid (each leads its process group)
    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_user: str = "root"
    ready: bool = False


@dataclass(frozen=True)
class Layout:
    """The paths of one instance directory."""

    base: Path

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    @property
    def root(self) -> Path:
        """DIRAC's root path for the server processes (DIRAC_ROOT_PATH): etc/dirac.cfg, etc/<CS name>.cfg."""
        return self.base / "root"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def grid_security(self) -> Path:
        return self.etc / "grid-security"

    @property
    def certificates(self) -> Path:
        return self.grid_security / "certificates"

    @property
    def host_cert(self) -> Path:
        return self.grid_security / "hostcert.pem"

    @property
    def host_key(self) -> Path:
        return self.grid_security / "hostkey.pem"

    @property
    def ca_dir(self) -> Path:
        return self.base / "ca"

    def user_cert(self, user: str) -> Path:
        return self.base / "users" / user / "usercert.pem"

    def user_key(self, user: str) -> Path:
        return self.base / "users" / user / "userkey.pem"

    @property
    def client_cfg(self) -> Path:
        """The dirac.cfg a client uses (``dirac-cfg:``)."""
        return self.base / "client" / "dirac.cfg"

    def proxy(self, user: str) -> Path:
        return self.base / "client" / f"{user}-proxy.pem"

    @property
    def sandboxes(self) -> Path:
        return self.base / "sandboxes"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def pilot_root(self, site: str) -> Path:
        """DIRAC root of the worker node of ``site`` (its etc/dirac.cfg is the pilot's local configuration)."""
        return self.base / "workers" / site

    def read_state(self) -> State | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            return State(**data)
        except TypeError:
            return None

    def write_state(self, state: State) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1, sort_keys=True))
        tmp.replace(self.state_file)
