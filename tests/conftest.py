"""Shared fixtures: a real MariaDB with DIRAC's own schemas (both generations), unique databases per test.

Helpers live in dirac_instance.py (import from there, not from conftest: several conftest modules exist)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pymysql
import pytest
from dirac_instance import DiracInstance, drop_instance, make_instance, root_conn
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# Property-based tests explore randomly on a developer's machine; in CI (CI=true) they run a fixed,
# derandomized set of examples, so a green or red run means the same thing every time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def mariadb() -> None:
    """MariaDB answers on 127.0.0.1:3306 (started by scripts/mariadb-up.sh when it is not)."""
    try:
        root_conn().close()
    except pymysql.err.OperationalError:
        subprocess.run([str(ROOT / "scripts" / "mariadb-up.sh")], check=True, timeout=90)


@pytest.fixture(params=["9.1", "8.0"], ids=["dirac9.1", "dirac8.0"])
def dirac(request, mariadb) -> DiracInstance:
    """A DIRAC instance of each schema generation (the test runs once per generation)."""
    inst = make_instance(request.param)
    yield inst
    drop_instance(inst)


@pytest.fixture
def dirac_old(mariadb) -> DiracInstance:
    """Only the DIRAC v6-v8 generation (JobParameters, SiteMask)."""
    inst = make_instance("8.0")
    yield inst
    drop_instance(inst)


@pytest.fixture
def dirac_new(mariadb) -> DiracInstance:
    """Only the DIRAC 9.1 generation (no JobParameters; ResourceStatusDB.SiteStatus)."""
    inst = make_instance("9.1")
    yield inst
    drop_instance(inst)
