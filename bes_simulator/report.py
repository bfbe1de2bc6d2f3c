"""``bes-simulate --report``: per scenario, the simulated time from the first alert to DIRAC's own action,
and the pages that went to the wrong place.

Alerts come from Alertmanager (``--alerts http://127.0.0.1:9093``, API v2) or a file holding the same
JSON list. An alert belongs to a scenario when it started at or after the scenario and its label for the target's
most specific part (``host``, else ``ce``, else ``site``) names it; for ``central-failure``, an alert
without a ``site`` label or whose name contains ``Central``; for ``user-broken``, ``DiracUserJobsFailing``
naming the owner. Times are converted to simulated seconds with the run's clock
(``sim = (utc - origin) * speed``).

Wrong place (issue #18): an alert that started while the fault lasted (or up to ``LINGER`` after: the rules
judge 30-min windows) and blames the wrong party, by its ``blame`` label (site, host, user, central,
monitoring; inferred from its labels when absent), unless another fault active then explains it (its place is
the alert's site or owner; a central failure explains everything; a fault that fails no job, such as a probe-only
``cvmfs-broken``, explains no job-failure alert):

* ``user-broken``: a site or one of its nodes blamed (``blame`` site/host) at a site where the owner's jobs
  failed or the one they were sent to, or a central failure (for one owner's workflow);
* ``site-software``: a user of the group blamed (``blame`` user), or a central failure (a node of the site
  blamed is the same party, the site's admins: a node that ran mostly that group's jobs can look like a
  black hole until the group's failures spread over the site);
* ``black-hole-host``, ``heartbeat-loss``: the site itself blamed (black hole only), a user blamed, or a
  central failure;
* ``pilot-abort``, ``no-matching``, ``cvmfs-broken``: a central failure;
* ``central-failure``: a site, a node or a user blamed.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .scenarios import FAILS_NO_JOBS
from .topology import ConfigError

# DIRAC's reactions the simulator models from DIRAC's code (docs/simulator.md, "DIRAC's reactions"): the only
# ones "DIRAC reacts" / "DIRAC decides" report. RSS:JobEfficiency appears only when the run opted in to it.
REACTIONS = ("StalledJobAgent:", "JobWrapper:", "RSS:PilotEfficiency ", "RSS:JobEfficiency ")
LINGER = 1800.0  # a fault's failures stay in the rules' 30-min windows this long after it ends
JOB_FAILURE_ALERTS = ("JobFailure", "BlackHole", "UserJobs", "Central")  # alert name parts


def load_events(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the events file ({exc.strerror}); fix --events") from None
    except ValueError:
        raise ConfigError(f"{path}: not a bes-simulate events file (invalid JSON); fix --events") from None
    if not isinstance(doc, dict) or "clock" not in doc or "scenarios" not in doc:
        raise ConfigError(f"{path}: not a bes-simulate events file; fix --events")
    return doc


def load_alerts(source: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Alertmanager's ``/api/v2/alerts`` list, from its URL or from a file."""
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/")
        if not url.endswith("/api/v2/alerts"):
            url += "/api/v2/alerts"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - operator-given URL
                data = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ConfigError(f"--alerts {source}: cannot read alerts from Alertmanager ({exc}); "
                              "check the URL") from None
    else:
        try:
            data = json.loads(Path(source).read_text())
        except (OSError, ValueError):
            raise ConfigError(f"--alerts {source}: not a readable JSON file of Alertmanager alerts") from None
    if not isinstance(data, list):
        raise ConfigError(f"--alerts {source}: expected Alertmanager's JSON list of alerts")
    return [a for a in data if isinstance(a, dict) and isinstance(a.get("labels"), dict) and a.get("startsAt")]


def _epoch(ts: str) -> float:
    text = ts.strip().replace("Z", "+00:00")
    if "." in text:  # Go timestamps carry nanoseconds: keep microseconds for fromisoformat
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _matches(sc: dict[str, Any], labels: dict[str, str]) -> bool:
    """Central failure: an alert without a site or named *Central*; user-broken: DiracUserJobsFailing for the
    owner; else the target's most specific label."""
    if sc["name"] == "central-failure":
        return "site" not in labels or "Central" in labels.get("alertname", "")
    target = sc.get("target", {})
    if sc["name"] == "user-broken":
        return labels.get("alertname") == "DiracUserJobsFailing" and labels.get("owner") == target.get("owner")
    for key in ("host", "ce", "site"):
        if key in target:
            return labels.get(key) == target[key]
    return False


def fmt_duration(seconds: float | None) -> str:
    """Simulated seconds as 1h05m / 12m / -3m; '-' for none."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    m = int(round(abs(seconds) / 60))
    return f"{sign}{m // 60}h{m % 60:02d}m" if m >= 60 else f"{sign}{m}m"


def _dirac(sc: dict[str, Any], until: float = float("inf")) -> tuple[tuple[float, str] | None,
                                                                     tuple[float, str] | None]:
    """DIRAC's first modelled reaction (any action or threshold, see REACTIONS) and its first decisive one (jobs
    Failed, a ban), up to simulated second ``until``."""
    seen = [(v["sim"], f"{k} (threshold)") for k, v in sc.get("dirac_expected", {}).items() if k.startswith(REACTIONS)]
    seen += [(v["sim"], k) for k, v in sc.get("dirac_actions", {}).items() if k.startswith(REACTIONS)]
    seen = [c for c in seen if c[0] <= until]
    decisive = [c for c in seen if c[1].split(" (")[0].endswith(("Failed", "Banned"))]
    return (min(seen) if seen else None), (min(decisive) if decisive else None)


def blame(labels: dict[str, str]) -> str:
    """Whose fault the alert says it is: its ``blame`` label, else inferred (owner -> user, *Central* -> central,
    host -> host, site -> site)."""
    if labels.get("blame"):
        return labels["blame"]
    if "owner" in labels:
        return "user"
    if "Central" in labels.get("alertname", ""):
        return "central"
    return "host" if "host" in labels else "site" if "site" in labels else "monitoring"


def _span(sc: dict[str, Any], linger: float = LINGER) -> tuple[float, float]:
    """Simulated seconds in which an alert may be this fault's doing: its run, plus ``linger``."""
    end = sc["ended"]["sim"] + linger if sc.get("ended") else float("inf")
    return sc["started"]["sim"], end


def _explains(sc: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether the alert is about this fault's own place (then another fault's row does not count it)."""
    name, target, params = sc["name"], sc.get("target", {}), sc.get("params", {})
    if name == "central-failure":
        return True
    if name in FAILS_NO_JOBS and any(part in labels.get("alertname", "") for part in JOB_FAILURE_ALERTS):
        return False
    if name == "user-broken":
        return labels.get("owner") == target.get("owner") or (params.get("site") or "") == labels.get("site")
    if name == "site-software" and labels.get("owner_group") == params.get("group") and blame(labels) == "user":
        return True
    return "site" in target and labels.get("site") == target["site"]


def _wrong(sc: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether the alert blames the wrong party for this fault (see the module docstring)."""
    who, name, target = blame(labels), sc["name"], sc.get("target", {})
    if name == "central-failure":
        return who in ("site", "host", "user")
    if who == "central":
        return True
    if name == "user-broken":
        touched = set(sc.get("owner_failures", {}).get("sites", {})) | {sc.get("params", {}).get("site")}
        return who in ("site", "host") and labels.get("site") in touched
    if name == "site-software":
        return who == "user" and labels.get("owner_group") == sc.get("params", {}).get("group")
    if name == "black-hole-host" and who == "site" and labels.get("site") == target.get("site"):
        return True
    return name in ("black-hole-host", "heartbeat-loss") and who == "user"


def wrong_place(doc: dict[str, Any], sc: dict[str, Any], alerts: list[dict[str, Any]],
                times: list[float], linger: float = LINGER) -> list[dict[str, Any]]:
    """The alerts (with their start in simulated seconds, ``times``) that went to the wrong place for ``sc``."""
    lo, hi = _span(sc, linger)
    others = [o for o in doc["scenarios"] if o is not sc and o.get("started")]
    out = []
    for alert, t in zip(alerts, times):
        labels = alert["labels"]
        if not lo - 1e-6 <= t <= hi or not _wrong(sc, labels):
            continue
        if any(_span(o, linger)[0] - 1e-6 <= t <= _span(o, linger)[1] and _explains(o, labels) for o in others):
            continue
        place = {k: labels[k] for k in ("site", "host", "owner") if k in labels}
        out.append({"alert": labels.get("alertname", "?"), "blame": blame(labels), **place, "after": t - lo})
    return sorted(out, key=lambda w: w["after"])


def alert_times(doc: dict[str, Any], alerts: list[dict[str, Any]]) -> list[float]:
    """Each alert's start in simulated seconds of the run (``sim = (utc - origin) * speed``)."""
    origin, speed = doc["clock"]["origin_epoch"], doc["clock"]["speed"]
    return [(_epoch(a["startsAt"]) - origin) * speed for a in alerts]


def build(doc: dict[str, Any], alerts: list[dict[str, Any]] | None,
          linger: float | None = None) -> list[dict[str, Any]]:
    """One row per started scenario: the first alert, DIRAC's first reaction and its first decisive action
    (jobs failed or a ban), with the lead times in simulated seconds. With ``linger``, only alerts and DIRAC
    actions up to ``linger`` after the fault's end count (a campaign hits the same place again later), and
    wrong places are counted over the same span."""
    alerts = alerts or []
    times = alert_times(doc, alerts)
    rows = []
    for sc in doc["scenarios"]:
        if not sc.get("started"):
            continue
        start = sc["started"]["sim"]
        until = _span(sc, linger)[1] if linger is not None else float("inf")
        first_alert = None
        for alert, t in zip(alerts, times):
            if start - 1e-6 <= t <= until and _matches(sc, alert["labels"]):
                if first_alert is None or t < first_alert[0]:
                    first_alert = (t, alert["labels"].get("alertname", "?"))
        row = {"scenario": sc["name"], "target": _target(sc),
               "start_sim": start, "alert": first_alert[1] if first_alert else None,
               "alert_after": first_alert[0] - start if first_alert else None}
        for name, found in zip(("dirac_reacts", "dirac_decides"), _dirac(sc, until)):
            row[name] = found[1] if found else "none"
            row[f"{name}_after"] = found[0] - start if found else None
            row[f"{name}_lead"] = found[0] - first_alert[0] if (found and first_alert) else None
        fails = sc.get("host_failures_sim")
        if fails is not None and first_alert:
            row["host_failures_before_alert"] = sum(1 for f in fails if f <= first_alert[0])
        row["wrong_place"] = wrong_place(doc, sc, alerts, times, LINGER if linger is None else linger)
        rows.append(row)
    return rows


def unexplained(doc: dict[str, Any], alerts: list[dict[str, Any]], since: float,
                linger: float = LINGER) -> list[dict[str, Any]]:
    """False alarms: the alerts that started at or after simulated second ``since`` and that no fault accounts
    for, i.e. none active then (or ended less than ``linger`` before) is named by it, explains it or is blamed on
    the wrong party by it. Each with its place and ``at`` (simulated seconds)."""
    started = [sc for sc in doc["scenarios"] if sc.get("started")]
    out = []
    for alert, t in zip(alerts, alert_times(doc, alerts)):
        labels = alert["labels"]
        if t < since or any(_span(sc, linger)[0] - 1e-6 <= t <= _span(sc, linger)[1]
                            and (_matches(sc, labels) or _explains(sc, labels) or _wrong(sc, labels))
                            for sc in started):
            continue
        place = {k: labels[k] for k in ("site", "ce", "host", "owner") if k in labels}
        out.append({"alert": labels.get("alertname", "?"), "blame": blame(labels), **place, "at": t})
    return sorted(out, key=lambda a: a["at"])


def _target(sc: dict[str, Any]) -> str:
    target, params = sc.get("target", {}), sc.get("params", {})
    if sc["name"] == "user-broken":
        focus = f", {params['concentration']:.0%} to {params['site']}" if params.get("site") else ""
        return f"{target.get('owner')} ({target.get('owner_group')}{focus})"
    if sc["name"] == "site-software":
        return f"{target.get('site')} ({params.get('group')} jobs)"
    return ", ".join(target.values()) or "all sites"


def _wrong_text(wrong: list[dict[str, Any]]) -> str:
    """``0``, or the count and each distinct alert with its place, e.g. ``2: DiracSiteJobFailureRatioHigh
    BES.WHU.cn``."""
    if not wrong:
        return "0"
    names = sorted({" ".join([w["alert"], *(w[k] for k in ("host", "site", "owner") if k in w)]) for w in wrong})
    return f"{len(wrong)}: " + ", ".join(names)


def render(rows: list[dict[str, Any]]) -> str:
    head = ("scenario", "target", "first alert", "after", "DIRAC reacts", "after", "lead",
            "DIRAC fails jobs / bans", "after", "lead", "wrong place")
    table = [head]
    for r in rows:
        alert = r["alert"] or "-"
        if "host_failures_before_alert" in r:
            alert += f" ({r['host_failures_before_alert']} jobs failed)"
        table.append((r["scenario"], r["target"], alert, fmt_duration(r["alert_after"]),
                      r["dirac_reacts"], fmt_duration(r["dirac_reacts_after"]), fmt_duration(r["dirac_reacts_lead"]),
                      r["dirac_decides"], fmt_duration(r["dirac_decides_after"]), fmt_duration(r["dirac_decides_lead"]),
                      _wrong_text(r["wrong_place"])))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("(simulated time after the fault started; lead = DIRAC's action - first alert; "
                 "(threshold) = the earliest DIRAC's rule allows; wrong place = pages blaming the wrong party, "
                 "goal 0)")
    return "\n".join(lines)
