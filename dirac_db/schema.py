"""DIRAC's own database schemas, taken from the DIRAC wheels on PyPI, loaded into MariaDB.

Two generations are supported: ``9.1`` (current DIRAC: no JobParameters or SiteMask in MySQL, site
status in ResourceStatusDB.SiteStatus) and ``8.0`` (what BES3 runs, DIRAC v6-v8: JobParameters with
the HostName rows and SiteMask in JobDB). Used by the tests, the demo, the simulator and the benchmark;
the exporter itself never needs it.

    python -m dirac_db.schema fetch      # download both wheels once, keep only the .sql files
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GENERATIONS = {"9.1": "9.1.22", "8.0": "8.0.55"}
SQL_FILES = {
    "JobDB": "DIRAC/WorkloadManagementSystem/DB/JobDB.sql",
    "PilotAgentsDB": "DIRAC/WorkloadManagementSystem/DB/PilotAgentsDB.sql",
    "JobLoggingDB": "DIRAC/WorkloadManagementSystem/DB/JobLoggingDB.sql",
}

# DIRAC >= 9.0 creates ResourceStatusDB's tables from SQLAlchemy models (ResourceStatusDB.py,
# class ElementStatusBase); its .sql file is empty. This DDL states the same columns and key.
SITE_STATUS_DDL = """
CREATE TABLE IF NOT EXISTS `SiteStatus` (
  `Name` VARCHAR(64) NOT NULL,
  `StatusType` VARCHAR(128) NOT NULL DEFAULT 'all',
  `VO` VARCHAR(64) NOT NULL DEFAULT 'all',
  `Status` VARCHAR(8) NOT NULL DEFAULT '',
  `Reason` VARCHAR(512) NOT NULL DEFAULT 'Unspecified',
  `DateEffective` DATETIME NOT NULL,
  `TokenExpiration` DATETIME NOT NULL DEFAULT '9999-12-31 23:59:59',
  `ElementType` VARCHAR(32) NOT NULL DEFAULT '',
  `LastCheckTime` DATETIME NOT NULL DEFAULT '1000-01-01 00:00:00',
  `TokenOwner` VARCHAR(16) NOT NULL DEFAULT 'rs_svc',
  PRIMARY KEY (`Name`, `StatusType`, `VO`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


class SchemaError(RuntimeError):
    """The schema files are missing or a generation is unknown."""


def schema_dir() -> Path:
    base = os.environ.get("BES_DIRAC_SCHEMA_DIR")
    if base:
        return Path(base)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "bes-monitoring" / "dirac-schema"


def sql_path(generation: str, db: str) -> Path:
    if generation not in GENERATIONS:
        raise SchemaError(f"unknown DIRAC schema generation {generation!r}; use one of {sorted(GENERATIONS)}")
    return schema_dir() / GENERATIONS[generation] / f"{db}.sql"


def fetch(python: str = sys.executable) -> None:
    """Download each DIRAC wheel once (pip, no dependencies) and keep its schema files."""
    for version in GENERATIONS.values():
        target = schema_dir() / version
        if all((target / f"{db}.sql").is_file() for db in SQL_FILES):
            continue
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                 f"DIRAC=={version}", "-d", tmp],
                check=True,
            )
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for db, member in SQL_FILES.items():
                    (target / f"{db}.sql").write_bytes(zf.read(member))
        print(f"dirac_db.schema: DIRAC {version} schemas in {target}")


def statements(sql: str) -> list[str]:
    """Split a DIRAC .sql file into statements, dropping comments (``--``, ``#``) and ``USE``."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith(("--", "#")))
    out = []
    for stmt in text.split(";"):
        stmt = stmt.strip()
        if stmt and not re.match(r"(?i)^use\s", stmt):
            out.append(stmt)
    return out


def create_databases(conn, generation: str, names: dict[str, str]) -> None:
    """Create the databases ``names`` = {"JobDB": db, "PilotAgentsDB": db, "JobLoggingDB": db,
    "ResourceStatusDB": db} (any subset) with DIRAC's schema of ``generation``.

    ``conn`` is a PyMySQL connection with rights to create databases.
    """
    with conn.cursor() as cur:
        for logical, dbname in names.items():
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{dbname}`")
            cur.execute(f"USE `{dbname}`")
            if logical == "ResourceStatusDB":
                if generation != "8.0":
                    cur.execute(SITE_STATUS_DDL)
                continue
            path = sql_path(generation, logical)
            if not path.is_file():
                raise SchemaError(f"{path} is missing; run 'python -m dirac_db.schema fetch'")
            for stmt in statements(path.read_text()):
                cur.execute(stmt)
    conn.commit()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m dirac_db.schema fetch", file=sys.stderr)
        return 3
    try:
        fetch()
    except (subprocess.CalledProcessError, StopIteration, KeyError, OSError) as exc:
        print(f"dirac_db.schema: could not fetch DIRAC's schema files into {schema_dir()}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
