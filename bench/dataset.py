"""Names and shape of one benchmark dataset: DIRAC databases holding N jobs of one schema generation.

A dataset is identified by (prefix, generation, jobs, active); its metadata (how and when it was
generated) is kept as JSON in the JobDB's database comment, so it disappears with the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# 30 sites: BES3's real ones first (see REFERENCE), then plausible others; weights fall off like a
# real grid (a few big sites, a long tail).
SITES = (
    "BES.IHEP-PBS.cn", "GRID.IHEP.cn", "CLOUD.IHEP-OPENSTACK.cn", "CLUSTER.USTC.cn", "BES.UCAS.cn",
    "BES.USTC.cn", "BES.WHU.cn", "BES.JINR.ru", "CLUSTER.SJTU.cn", "BES.PKU.cn", "CLUSTER.SDU.cn",
    "GRID.INFN-TORINO.it", "CLUSTER.LZU.cn", "BES.SYSU.cn", "CLUSTER.ZZU.cn", "BES.NJU.cn",
    "GRID.JINR-T2.ru", "CLOUD.CNIC.cn", "BES.HNU.cn", "CLUSTER.BUAA.cn", "BES.GXU.cn", "CLUSTER.SCU.cn",
    "BES.ZJU.cn", "GRID.UMN.us", "CLOUD.INFN-PD.it", "BES.TSINGHUA.cn", "CLUSTER.HEP-PKU.cn", "BES.BNU.cn",
    "GRID.KIT.de", "CLUSTER.NKU.cn",
)
SITE_WEIGHTS = tuple(1.0 / (i + 1) ** 0.9 for i in range(len(SITES)))
TOTAL_HOSTS = 5000
BANNED_SITES = ("CLUSTER.NKU.cn", "GRID.KIT.de")
PROBE_GROUP = "bes_probe"
GENERATIONS = ("8.0", "9.1")
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def site_domain(site: str) -> str:
    """``BES.IHEP-PBS.cn`` -> ``ihep-pbs.cn``: the DNS suffix of the site's worker nodes and CEs."""
    parts = site.lower().split(".")
    return ".".join(parts[1:])


def hosts_of(site_index: int) -> list[str]:
    """The worker nodes of one site (proportional to the site's weight, at least 10)."""
    share = SITE_WEIGHTS[site_index] / sum(SITE_WEIGHTS)
    n = max(10, round(TOTAL_HOSTS * share))
    dom = site_domain(SITES[site_index])
    return [f"wn{j:04d}.{dom}" for j in range(n)]


def ces_of(site_index: int) -> list[str]:
    """One to three computing elements per site, big sites have more."""
    n = 3 if site_index < 5 else 2 if site_index < 15 else 1
    dom = site_domain(SITES[site_index])
    return [f"ce{k:02d}.{dom}" for k in range(1, n + 1)]


@dataclass(frozen=True)
class Dataset:
    """One set of DIRAC databases for the benchmark."""

    jobs: int
    active: int
    generation: str = "8.0"
    prefix: str = "bes_bench"

    def __post_init__(self):
        if self.generation not in GENERATIONS:
            raise ValueError(f"--generation {self.generation!r}: use one of {', '.join(GENERATIONS)}")
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"--prefix {self.prefix!r}: use lower-case letters, digits and _ (at most 31)")
        if self.jobs < 1000 or self.jobs > 100_000_000:
            raise ValueError(f"--jobs {self.jobs}: give a number from 1000 to 100000000")
        if not 0 < self.active <= self.jobs // 2:
            raise ValueError(f"--active {self.active}: give a number from 1 to half of --jobs")

    @property
    def tag(self) -> str:
        return f"{self.prefix}_{self.generation.replace('.', '')}_{self.jobs}_{self.active}"

    @property
    def jobdb(self) -> str:
        return f"{self.tag}_job"

    @property
    def pilotdb(self) -> str:
        return f"{self.tag}_pilot"

    @property
    def logdb(self) -> str:
        return f"{self.tag}_log"

    @property
    def rssdb(self) -> str | None:
        return None if self.generation == "8.0" else f"{self.tag}_rss"

    @property
    def databases(self) -> list[str]:
        return [d for d in (self.jobdb, self.pilotdb, self.logdb, self.rssdb) if d]

    @property
    def old(self) -> bool:
        return self.generation == "8.0"


def read_meta(conn, ds: Dataset) -> dict | None:
    """The dataset's metadata if its databases exist and generation completed, else None (JobLoggingDB,
    empty at generation, may be missing: ``bench.generate.ensure`` adds it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN %s",
                    (tuple(ds.databases),))
        rows = dict(cur.fetchall())
    if set(rows) | {ds.logdb} != set(ds.databases):
        return None
    try:
        meta = json.loads(rows[ds.jobdb] or "{}")
    except ValueError:
        return None
    return meta if meta.get("complete") else None


def write_meta(conn, ds: Dataset, meta: dict) -> None:
    text = json.dumps(meta, separators=(",", ":"), sort_keys=True)
    if len(text) > 1024:
        raise ValueError("dataset metadata longer than a database comment allows")
    with conn.cursor() as cur:
        cur.execute(f"ALTER DATABASE `{ds.jobdb}` COMMENT = %s", (text,))


def drop(conn, ds: Dataset) -> None:
    with conn.cursor() as cur:
        for name in ds.databases:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def list_datasets(conn, prefix: str = "bes_bench") -> list[str]:
    """JobDB names of benchmark datasets with this prefix (complete or not)."""
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                    (prefix.replace("_", r"\_") + r"\_%\_job",))
        return sorted(r[0] for r in cur.fetchall())
