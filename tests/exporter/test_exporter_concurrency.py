"""Two Prometheus servers (an HA pair) scraping at once while DIRAC writes: counters stay exact."""

from __future__ import annotations

import threading
import time

from metrics_util import Exporter, http_scrape

from bes_exporter.web import serve

SITES = ("BES.IHEP-PBS.cn", "BES.UCAS.cn", "BES.WHU.cn")


def test_concurrent_scrapes_during_writes_never_double_count(dirac):
    exp = Exporter(dirac.config())
    server = serve(exp.registry, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    w = dirac.writer
    http_scrape(url)
    stop = threading.Event()
    seen: list[float] = []
    per_thread: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def scraper() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                s = http_scrape(url)
                total = (sum(s.get_value("dirac_jobs_finished_total", site=site, status="Done") or 0 for site in SITES))
                seen.append(total)
                per_thread.setdefault(threading.get_ident(), []).append(total)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=scraper) for _ in range(2)]
    for t in threads:
        t.start()
    expected: dict[tuple[str, str], int] = {}
    try:
        for i in range(90):
            site = SITES[i % 3]
            final = ("Done", "Failed", "Done", "Killed")[i % 4]
            j = w.submit()
            if final == "Killed":  # killed while it runs (a kill before it ran is no site's)
                w.optimize(j)
                w.match(j, site)
                w.set_status(j, "Running", "Application", "Running")
                w.kill(j)
            else:
                w.run_to(j, site, final, "Application Finished With Errors" if final == "Failed" else "Complete")
            expected[(site, final)] = expected.get((site, final), 0) + 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    server.shutdown()
    assert not errors, errors
    assert len(seen) >= 4, "the scrapers did not run concurrently with the writes"
    for values in per_thread.values():  # a counter never goes down, whoever scrapes
        assert values == sorted(values), values
    s = exp.scrape()
    for (site, status), n in expected.items():
        assert s.v("dirac_jobs_finished_total", site=site, status=status) == n, (site, status)
    assert s.v("dirac_jobs_failed_total", site=SITES[1], reason="application_error") == expected[(SITES[1], "Failed")]
