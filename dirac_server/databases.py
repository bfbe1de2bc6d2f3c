"""DIRAC's databases of one instance in MariaDB, each named ``<tag>_<DIRAC name>``.

Tables come from the ``.sql`` file DIRAC ships next to each DB class (``USE`` and comments dropped, as
DIRAC's installer does); databases whose ``.sql`` holds no table (TaskQueueDB, SandboxMetadataDB,
ProxyDB, ResourceStatusDB) get their tables from DIRAC's DB class when a service first opens them.
"""

from __future__ import annotations

from importlib.resources import files

import pymysql

from dirac_db.schema import statements

from .csconfig import DATABASES


def database_names(tag: str) -> dict[str, str]:
    return {logical: f"{tag}_{logical}" for logical in DATABASES}


def connect(host: str, port: int, user: str) -> pymysql.connections.Connection:
    return pymysql.connect(host=host, port=port, user=user, password="", autocommit=True, connect_timeout=5)


def sql_statements(logical: str) -> list[str]:
    """The statements of DIRAC's ``<System>System/DB/<logical>.sql`` (none when it only selects the DB)."""
    system = DATABASES[logical]
    return statements(files("DIRAC").joinpath(f"{system}System", "DB", f"{logical}.sql").read_text())


def create(conn: pymysql.connections.Connection, names: dict[str, str]) -> None:
    """Create every database (dropping a leftover of the same name first) with DIRAC's tables."""
    with conn.cursor() as cur:
        for logical, name in names.items():
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"USE `{name}`")
            for stmt in sql_statements(logical):
                cur.execute(stmt)


def drop(conn: pymysql.connections.Connection, names: dict[str, str]) -> None:
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
