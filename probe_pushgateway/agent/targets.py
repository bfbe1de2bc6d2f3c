"""Probe targets (a DIRAC site, optionally one CE), probe job names and scheduled downtimes."""

from __future__ import annotations

from dataclasses import dataclass

NO_CE = "none"
JOB_NAME_PREFIX = "bes_probe"
# Before matching, Jobs.Site may hold a placeholder instead of a site.
SITE_PLACEHOLDERS = frozenset({"ANY", "Any", "Multiple", "MultipleInput", "", "Unknown"})


@dataclass(frozen=True)
class Target:
    """One probe target; ``ce`` None means "any CE of the site" (label value ``none``)."""

    site: str
    ce: str | None = None

    @property
    def ce_label(self) -> str:
        return self.ce or NO_CE

    @property
    def key(self) -> tuple[str, str]:
        """(site, ce label): the Pushgateway grouping key values and the state key."""
        return (self.site, self.ce_label)

    @property
    def state_key(self) -> str:
        return f"{self.site}|{self.ce_label}"

    @property
    def job_name(self) -> str:
        """DIRAC JobName of this target's probe jobs, e.g. ``bes_probe@BES.USTC.cn@none``."""
        return f"{JOB_NAME_PREFIX}@{self.site}@{self.ce_label}"

    def __str__(self) -> str:
        return f"{self.site}/{self.ce_label}"


def target_from_job(job_name: str | None, site: str | None) -> Target | None:
    """The target a probe job was sent to: from its JobName, else from Jobs.Site (CE unknown)."""
    parts = (job_name or "").split("@")
    if len(parts) == 3 and parts[0] == JOB_NAME_PREFIX and parts[1]:
        return Target(parts[1], None if parts[2] in ("", NO_CE) else parts[2])
    if site and site not in SITE_PLACEHOLDERS:
        return Target(site)
    return None


def target_from_key(key: str) -> Target:
    """Inverse of :attr:`Target.state_key`."""
    site, _, ce = key.partition("|")
    return Target(site, None if ce in ("", NO_CE) else ce)


@dataclass(frozen=True)
class Downtime:
    """A declared scheduled downtime of a site (all its CEs) or of one CE; times are Unix seconds."""

    site: str
    ce: str | None
    start: float
    end: float

    def covers(self, target: Target, now: float) -> bool:
        if not self.start <= now < self.end or target.site != self.site:
            return False
        return self.ce is None or self.ce == target.ce


def in_downtime(target: Target, downtimes: list[Downtime], now: float) -> bool:
    """True while any downtime covers the target."""
    return any(d.covers(target, now) for d in downtimes)
