"""The session's real DIRAC server fixture (``real_dirac``), one for every module of this folder."""

from real_dirac_fixtures import real_dirac_fixture  # noqa: F401 - fixture
