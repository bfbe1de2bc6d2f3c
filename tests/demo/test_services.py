"""The daemon launchers start real Debian daemons on free loopback ports and report failures clearly."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from services_fixtures import (  # noqa: F401
    pushgateway_fixture,
    read_pushgateway_metrics,
    secure_pushgateway_fixture,
    tls_material_fixture,
)

from bes_demo import services


def _push(address: str, value: float = 1.0) -> None:
    reg = CollectorRegistry()
    Gauge("svc_test_value", "test", registry=reg).set(value)
    push_to_gateway(address, job="svc_test", registry=reg, grouping_key={"site": "BES.TEST.cn"})


def test_free_port_is_bindable():
    import socket

    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_pushgateway_push_restart_persists(pushgateway):
    assert pushgateway.url.startswith("http://127.0.0.1:") and pushgateway.port != 9091
    _push(pushgateway.address, 42)
    groups = read_pushgateway_metrics(pushgateway)
    assert groups[0]["labels"]["site"] == "BES.TEST.cn"
    assert "svc_test_value" in groups[0]
    pushgateway.restart()
    assert any("svc_test_value" in g for g in read_pushgateway_metrics(pushgateway))
    pushgateway.stop()
    assert not pushgateway.running() and not pushgateway.pid_path.exists()
    pushgateway.stop()  # idempotent


def test_secure_pushgateway_requires_tls_and_password(secure_pushgateway):
    pgw = secure_pushgateway
    assert pgw.url.startswith("https://")
    auth = (pgw.user, pgw.password)
    assert read_pushgateway_metrics(pgw.daemon, ca=pgw.tls.ca, auth=auth) == []
    with pytest.raises(urllib.error.HTTPError) as err:
        read_pushgateway_metrics(pgw.daemon, ca=pgw.tls.ca, auth=(pgw.user, "wrong"))
    assert err.value.code == 401
    with pytest.raises(urllib.error.URLError) as err:  # verified against the system CAs, not ours
        urllib.request.urlopen(pgw.url + "/-/ready", timeout=5)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_prometheus_scrapes_pushgateway_and_alertmanager_runs(tmp_path, pushgateway):
    _push(pushgateway.address, 7)
    am_cfg = tmp_path / "am.yml"
    am_cfg.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n")
    cfg = tmp_path / "prom.yml"
    cfg.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [pushgateway.address]}]}],
    }))
    with services.start_alertmanager(am_cfg, tmp_path / "am") as am, \
            services.start_prometheus(cfg, tmp_path / "prom") as prom:
        with urllib.request.urlopen(am.url + "/api/v2/status", timeout=5) as r:
            assert json.load(r)["cluster"]["status"] == "disabled"
        deadline = time.monotonic() + 20
        result = []
        while time.monotonic() < deadline and not result:
            with urllib.request.urlopen(prom.url + "/api/v1/query?query=svc_test_value", timeout=5) as r:
                result = json.load(r)["data"]["result"]
            time.sleep(0.3)
        assert result and result[0]["metric"]["job"] == "svc_test"
        assert result[0]["metric"]["site"] == "BES.TEST.cn" and result[0]["value"][1] == "7"
        req = urllib.request.Request(prom.url + "/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
    assert not prom.running() and not am.running()


def test_bad_config_raises_with_log_tail(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("scrape_configs: [this is not valid\n")
    with pytest.raises(services.ServiceError) as err:
        services.start_prometheus(cfg, tmp_path / "prom", timeout=15)
    msg = str(err.value)
    assert "prometheus did not become ready" in msg and "prometheus.log" in msg
    assert "err" in msg.lower()  # the daemon's own complaint is in the message


def test_missing_binary_is_a_clear_error(tmp_path):
    d = services.Daemon("nothing", "/nonexistent/bin", [], tmp_path)
    with pytest.raises(services.ServiceError, match="not found"):
        d.start()


def test_stop_pidfile_ignores_foreign_pids(tmp_path):
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("1\n")  # init: not one of ours
    assert services.stop_pidfile(pid_file) is False
    assert services.stop_pidfile(tmp_path / "absent.pid") is False
