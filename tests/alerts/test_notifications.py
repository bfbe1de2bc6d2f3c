"""Notifications that reach people: a real Alertmanager with a copy of alerts/alertmanager.yml (routes,
inhibitions and templates as shipped; mail relay and chat webhook pointed at loopback sinks) delivers to
an SMTP sink and a Slack-compatible chat webhook, and the test reads what a shifter reads.

The alerts are the ones the rules produce: labels and rendered annotations of the promtool unit tests'
expected alerts (alerts/tests/), checked there against the real rules."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from notify_sinks import ALERTS, Mail, SmtpSink, WebhookSink, render_alertmanager_config, wait_until

from bes_demo import services

RUNBOOK = re.compile(r"https://\S+/alerts/runbook\.md#(dirac[a-z]+)")


def promtool_alert(alertname: str, **labels: str) -> dict:
    """Labels and annotations of the first expected alert named so in alerts/tests/ (with those labels)."""
    for path in sorted((ALERTS / "tests").glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                for exp in t.get("exp_alerts") or []:
                    got = exp["exp_labels"]
                    if t["alertname"] == alertname and "exp_annotations" in exp and labels.items() <= got.items():
                        return {"labels": {"alertname": alertname, **got}, "annotations": exp["exp_annotations"]}
    raise AssertionError(f"no promtool expectation for {alertname} {labels}")


SITE_CRITICAL = promtool_alert("DiracSiteJobFailureRatioCritical", site="BES.WHU.cn")
HOSTS = [promtool_alert("DiracBlackHoleHost", host="wn001.ihep.ac.cn"),
         promtool_alert("DiracBlackHoleHost", host="wn1.ihep.ac.cn")]
CE = promtool_alert("DiracPilotsFailing", ce="ce.ustc.edu.cn")
USER = promtool_alert("DiracUserJobsFailing", owner="alice")
CENTRAL = promtool_alert("DiracCentralFailure", signal="probes")
EXPORTER = promtool_alert("DiracExporterDown", instance="dirac-exporter:9810")
SHIFTER, ADMINS = "dirac-shifter@example.org", "dirac-site-admins@example.org"
SUPPORT, TEAM = "dirac-user-support@example.org", "dirac-team@example.org"


def post(url: str, alerts: list[dict], ends: datetime) -> None:
    now = datetime.now(timezone.utc)
    body = [{**a, "startsAt": (now - timedelta(minutes=5)).isoformat(), "endsAt": ends.isoformat(),
             "generatorURL": "http://prometheus.example.org/graph"} for a in alerts]
    req = urllib.request.Request(url + "/api/v2/alerts", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


@pytest.fixture
def delivered(tmp_path):
    """A real Alertmanager on the rendered copy, the shipped alerts posted; yields (am, smtp, chat)."""
    with SmtpSink() as smtp, WebhookSink() as chat:
        cfg = render_alertmanager_config(tmp_path / "am" / "alertmanager.yml", smtp.address, chat.url + "/chat")
        done = subprocess.run(["/usr/bin/amtool", "check-config", str(cfg)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        am = services.start_alertmanager(cfg, tmp_path / "am")
        try:
            later = datetime.now(timezone.utc) + timedelta(hours=1)
            post(am.url, [SITE_CRITICAL, *HOSTS, CE, USER, CENTRAL, EXPORTER], later)
            # 6 groups; the central one goes to two receivers: 7 mails
            wait_until(lambda: len(smtp.mails()) >= 7, 30, "7 mails from Alertmanager")
            yield am, smtp, chat
        finally:
            am.stop()


def mails_about(smtp: SmtpSink, alert: dict) -> list[Mail]:
    return [m for m in smtp.mails() if alert["annotations"]["summary"] in m.text]


def read_as_shifter(mail: Mail, alert: dict, status: str = "FIRING") -> None:
    """Subject: status, severity and what is wrong where; body: where, reason, runbook link."""
    labels, ann = alert["labels"], alert["annotations"]
    assert mail.subject.startswith(f"[{status}"), mail.subject
    assert labels["severity"] in mail.subject and ann["summary"] in mail.subject, mail.subject
    for key, word in (("site", "site"), ("ce", "CE"), ("host", "host"), ("owner", "owner")):
        if key in labels:
            assert labels[key] in mail.subject, (key, mail.subject)
            assert f"{word} {labels[key]}" in mail.text, (key, mail.text)
    assert ann["description"] in mail.text
    links = RUNBOOK.findall(mail.text)
    assert labels["alertname"].lower() in links, mail.text
    assert f'href="https://git.example.org/bes-monitoring/-/blob/main/{ann["runbook_url"]}"' in mail.html


def test_mail_names_place_reason_and_runbook_and_goes_to_whom_blame_says(delivered):
    _, smtp, _ = delivered
    for alert, to in ((SITE_CRITICAL, [SHIFTER]), (CE, [ADMINS]), (USER, [SUPPORT]), (EXPORTER, [TEAM]),
                      (CENTRAL, [SHIFTER, TEAM])):
        mails = mails_about(smtp, alert)
        got = sorted(r for m in mails for r in m.rcpt_tos)
        assert got == sorted(to), (alert["labels"], got)
        for mail in mails:
            read_as_shifter(mail, alert)
    # a user's fault never reaches a site's shifter or admins
    assert all("alice" not in m.text for m in smtp.mails() if set(m.rcpt_tos) & {SHIFTER, ADMINS})
    # two black-hole nodes of one site: one mail naming both, its subject says there are two
    (mail,) = [m for m in smtp.mails() if "DiracBlackHoleHost" in m.text]
    assert mail.rcpt_tos == [ADMINS]
    assert "one of 2 alerts at site BES.IHEP-PBS.cn" in mail.subject, mail.subject
    for alert in HOSTS:
        assert f"host {alert['labels']['host']}" in mail.text and alert["annotations"]["description"] in mail.text
    assert RUNBOOK.findall(mail.text) == ["diracblackholehost"] * 2


def test_chat_message_names_place_reason_and_runbook(delivered):
    _, smtp, chat = delivered
    posts = wait_until(lambda: [p for p in chat.received("/chat") if p.get("channel") == "#dirac-shifter"], 10,
                       "the shifter's chat messages")
    wait_until(lambda: len(chat.received("/chat")) >= 5, 10, "5 chat messages (no chat for user support)")
    assert not any("alice" in json.dumps(p) for p in chat.received("/chat")), "user faults go by mail only"
    (msg,) = [p["attachments"][0] for p in posts if "BES.WHU.cn" in p["attachments"][0]["title"]]
    (mail,) = mails_about(smtp, SITE_CRITICAL)
    assert msg["title"] == mail.subject
    assert msg["title_link"].endswith("alerts/runbook.md#diracsitejobfailureratiocritical")
    assert msg["title_link"].startswith("https://")
    assert "*site BES.WHU.cn*" in msg["text"] and SITE_CRITICAL["annotations"]["description"] in msg["text"]
    assert f"Runbook: {msg['title_link']}" in msg["text"]


def test_resolved_mail_says_so(delivered):
    am, smtp, _ = delivered
    post(am.url, [SITE_CRITICAL], datetime.now(timezone.utc) - timedelta(seconds=1))
    resolved = wait_until(lambda: [m for m in mails_about(smtp, SITE_CRITICAL) if "RESOLVED" in m.subject], 30,
                          "the resolved mail")
    assert resolved[0].rcpt_tos == [SHIFTER]
    read_as_shifter(resolved[0], SITE_CRITICAL, status="RESOLVED")


def test_shipped_config_keeps_placeholders_and_relative_templates():
    """The shipped file is a template for sites: example.org receivers, templates next to it."""
    cfg = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    assert cfg["templates"] == ["templates/*.tmpl"] and list(Path(ALERTS / "templates").glob("*.tmpl"))
    text = json.dumps(cfg["receivers"]) + json.dumps(cfg["global"])
    addresses = re.findall(r"[\w.-]+@[\w.-]+|https?://[\w.-]+", text)
    assert addresses and all(a.endswith("example.org") for a in addresses), addresses
