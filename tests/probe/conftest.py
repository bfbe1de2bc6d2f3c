"""Fixtures of the probe tests: real Pushgateways (plain, HTTPS + basic auth), TLS material, the pyz."""

from __future__ import annotations

from pathlib import Path

import pytest
from services_fixtures import (  # noqa: F401
    pushgateway_fixture,
    secure_pushgateway_fixture,
    tls_material_fixture,
)


@pytest.fixture(scope="session")
def probe_pyz(tmp_path_factory) -> Path:
    """``bes-probe.pyz`` built from this checkout (world-readable, for runs as another user)."""
    from probe_pushgateway.build import build

    out = tmp_path_factory.mktemp("pyz") / "bes-probe.pyz"
    build(out)
    out.parent.chmod(0o755)
    return out
