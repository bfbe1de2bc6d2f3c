"""The scale benchmark at a small N (20 k jobs, well under a minute) so that it cannot rot: the real
generator, exporter CLI, mysql client and prometheus-sql-exporter against the real MariaDB. Not a
timed test: it checks the result's shape and the facts that do not depend on the machine."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from dirac_instance import root_conn

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run"


def schemas(prefix: str) -> dict[str, str]:
    """Databases whose name starts with ``prefix``, with their comment (the dataset's metadata)."""
    conn = root_conn()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                        (prefix.replace("_", "\\_") + "%",))
            return dict(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def prefix(mariadb):
    tag = f"bes_bench_smoke_{uuid.uuid4().hex[:8]}"
    yield tag
    conn = root_conn()
    with conn.cursor() as cur:  # whatever a failed run left behind
        for name in schemas(tag):
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, timeout=timeout)


def test_bench_smoke_20k(prefix, tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    r = run("--jobs", "20000", "--prefix", prefix, "--scrapes", "4", "--warmup", "2", "--interval", "0.5",
            "--transitions", "30", "--pilot-transitions", "6", "--naive-cycles", "1",
            "--buffer-pool-mb", "keep", "--json", str(out), "--markdown", str(md))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in ("jobs", "minimal_sql_s"):
        assert key in res
    for key in ("scrape_p50_s", "scrape_p95_s", "rows_examined_per_scrape", "rss_peak_mb"):
        assert key in res["ours"], key
    for key in ("cycle_db_s", "rows_examined_per_cycle"):
        assert key in res["naive"], key
    assert res["jobs"] == 20000 and res["active"] == 200 and res["generation"] == "8.0"
    o, n = res["ours"], res["naive"]
    assert o["scrapes"] == 4 and o["collector_failures"] == {}
    assert {"jobs", "finished", "heartbeat", "hosts", "pilots"} <= set(o["collector_p50_s"])
    assert 0 < o["scrape_p50_s"] <= o["scrape_p95_s"]
    assert 0 < o["rows_examined_per_scrape"] < 20000  # never the history
    assert 10 < o["rss_peak_mb"] < 500
    assert o["transitions_per_scrape"] > 0
    # the naive GROUP BY alone reads every job; the BES3 host join scans Jobs once more
    assert n["rows_examined_per_cycle"] >= 2 * 20000
    assert n["cycle_db_s"] > 0 and res["minimal_sql_s"] > 0
    assert res["ratios"]["naive_rows_over_ours_rows"] > 1
    assert "naive sql-exporter" in md.read_text() and "| rows examined |" in r.stdout
    kept = schemas(prefix)  # the dataset stays for the next run of the same N, with its metadata
    assert sorted(kept) == [f"{prefix}_80_20000_200_{d}" for d in ("job", "log", "pilot")]
    meta = json.loads(kept[f"{prefix}_80_20000_200_job"])
    assert meta["complete"] and meta["jobs"] == 20000 and meta["job_parameters"] > 3 * 15000
    r = run("--jobs", "20000", "--prefix", prefix, "--scrapes", "1", "--warmup", "1", "--interval", "0.2",
            "--naive-cycles", "1", "--buffer-pool-mb", "keep", "--drop",
            "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "reusing" in r.stderr and json.loads(out.read_text())["dataset"]["reused"] is True
    assert schemas(prefix) == {}  # --drop removed it


@pytest.mark.parametrize("args, words", [
    (["--jobs", "5", "--json", "x.json"], "--jobs 5"),
    (["--jobs", "20000", "--json", "x.json", "--generation", "7.0"], "--generation"),
    (["--jobs", "20000", "--json", "x.json", "--prefix", "Bad-Name"], "--prefix"),
    (["--jobs", "20000", "--json", "x.json", "--active", "15000"], "--active"),
    (["--jobs", "20000", "--json", "x.json", "--db-host", "db.example.org"], "loopback"),
])
def test_bench_bad_input_one_line_error(args, words, tmp_path):
    r = subprocess.run([str(RUN), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not (tmp_path / "x.json").exists()
