"""dirac_site_status{site,status}: one-hot site state, from JobDB.SiteMask (DIRAC up to 9.0a) or
ResourceStatusDB.SiteStatus (newer DIRAC), whichever exists."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from ..labels import SITE_STATES, site_label
from .base import Context, Scraper

SITEMASK_SQL = "SELECT Site, Status FROM `{jobdb}`.SiteMask"
# One row per (Name, StatusType, VO): the VO-wide row ('all') wins over per-VO rows.
RSS_SQL = "SELECT Name, Status FROM `{rssdb}`.SiteStatus WHERE StatusType = 'all' ORDER BY Name, VO <> 'all'"


class SiteStatus(Scraper):
    name = "site_status"
    help = "Site mask / RSS status, one-hot (dirac_site_status)."

    def __init__(self, config):
        super().__init__(config)
        self.source: str | None = None

    def _sql(self, ctx: Context) -> str:
        db = ctx.config.database
        if self.source is None:
            if "SiteMask" in ctx.db.tables(db["jobdb"]):
                self.source = SITEMASK_SQL.format(jobdb=db["jobdb"])
            elif "SiteStatus" in ctx.db.tables(db["rssdb"]):
                self.source = RSS_SQL.format(rssdb=db["rssdb"])
            else:
                raise LookupError(f"neither {db['jobdb']}.SiteMask nor {db['rssdb']}.SiteStatus exists;"
                                  " set database.rssdb or disable with --no-collect.site_status")
        return self.source

    def scrape(self, ctx: Context):
        states: dict[str, str] = {}
        try:
            rows = ctx.db.query(self._sql(ctx))
        except Exception:
            self.source = None  # look again next time (schema may have changed)
            raise
        for site, status in rows:
            states.setdefault(site_label(site), status if status in SITE_STATES else "Unknown")
        ctx.shared.sites.update(s for s in states if s != "invalid")
        fam = GaugeMetricFamily("dirac_site_status", "Site mask / RSS status (1 for the current one).",
                                labels=["site", "status"])
        for site in sorted(states):
            for status in SITE_STATES:
                fam.add_metric([site, status], 1.0 if states[site] == status else 0.0)
        yield fam
