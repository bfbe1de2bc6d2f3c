"""The probe agents' YAML configuration: every key validated, one-line errors naming file and key."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dirac_db.connection import check_ssl

from .targets import Downtime, Target

PASSWORD_ENV = "BES_PROBE_AGENT_DB_PASSWORD"
# fullmatch everywhere ('$' would accept a trailing newline); sites and CEs also fit bes-probe's label
# alphabet and length ([A-Za-z0-9._-], at most 128), or the probe would refuse them on the node.
_SITE_RE = re.compile(r"(?=.{1,128}\Z)[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+")
_CE_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_IDENT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIRAC_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # DIRAC user and group names (Jobs.Owner/OwnerGroup)
_PUSH_USER_RE = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
# Files shipped with each probe job; '{site}' and '{ce}' in their names select one per target.
PROBE_FILES = ("probe_password_file", "probe_ca_file", "probe_client_cert", "probe_client_key")


class ConfigError(Exception):
    """A configuration problem, worded as one line that names the file and key and says the fix."""


# key -> (type(s), default); a dict value is a nested section. REQUIRED marks keys without default.
REQUIRED = object()
SCHEMA: dict[str, Any] = {
    "targets": ((list, str), REQUIRED),
    "probe": {
        "pyz": (str, None),
        "config": (str, None),
        "python": (str, "python3"),
        "args": (list, []),
        "job_group": (str, "bes_probe"),
        "owner": (str, None),
        "owner_group": (str, None),
        "period": ((int, float), 3600),
        "waiting_timeout": ((int, float), 2400),
        "running_timeout": ((int, float), 2400),
        "cpu_time": (int, 900),
        "done_window": ((int, float), 86400),
        "result_max_age": ((int, float), None),
        "harvest_max_age": ((int, float), None),
    },
    "pushgateway": {
        "url": (str, REQUIRED),
        "probe_url": (str, None),
        "username": (str, None),
        "password_file": (str, None),
        "ca_file": (str, None),
        "client_cert": (str, None),
        "client_key": (str, None),
        "timeout": ((int, float), 10),
        "probe_user": (str, None),
        "probe_password_file": (str, None),
        "probe_ca_file": (str, None),
        "probe_client_cert": (str, None),
        "probe_client_key": (str, None),
    },
    "backend": {
        "type": (str, "dirac"),
        "config_files": (list, []),
        "require_auth": (bool, True),
        "workdir": (str, None),
        "setup": (str, "BESProbe"),
        "vo": (str, "bes"),
    },
    "database": {
        "host": (str, "127.0.0.1"),
        "port": (int, 3306),
        "user": (str, "dirac_monitor"),
        "password": (str, None),
        "password_file": (str, None),
        "jobdb": (str, "JobDB"),
        "connect_timeout": ((int, float), 5),
        "query_timeout": ((int, float), 10),
        "ssl": {"ca": (str, None), "cert": (str, None), "key": (str, None)},
    },
    "downtimes": ((list, str), []),
    "state_dir": (str, "/var/lib/bes-probe-agent"),
    "interval": ((int, float), 300),
    "log_level": (str, "info"),
}
_NAMES = {int: "integer", float: "number", str: "string", list: "list", bool: "boolean"}


@dataclass
class Config:
    """Validated configuration; ``targets`` is None for "all sites from DIRAC's configuration"."""

    targets: list[Target] | None
    probe: dict
    pushgateway: dict
    backend: dict
    database: dict | None
    downtimes: list[Downtime]
    downtimes_file: Path | None
    state_dir: Path
    interval: float
    log_level: str
    source: str = "<config>"
    db_password: str = field(default="", repr=False)
    push_password: str | None = field(default=None, repr=False)

    def current_downtimes(self) -> list[Downtime]:
        """The downtime list, re-read from its file if it is one (so edits apply without a restart)."""
        if self.downtimes_file is None:
            return self.downtimes
        return load_downtimes(str(self.downtimes_file), self.source)

    @property
    def result_max_age(self) -> float:
        """How long a probe result or timeout class stays valid (default: period + both timeouts)."""
        p = self.probe
        return p["result_max_age"] or p["period"] + p["waiting_timeout"] + p["running_timeout"]

    @property
    def harvest_max_age(self) -> float:
        """Finished probe jobs older than this are not harvested (default: ``result_max_age``; 0: never)."""
        value = self.probe["harvest_max_age"]
        return self.result_max_age if value is None else value


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    text = " or ".join(_NAMES[t] for t in types)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _apply(schema: dict, data: Any, path: str, where: str) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{path or 'top level'}' must be a mapping of keys; fix the indentation")
    unknown = sorted(set(data) - set(schema), key=str)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{where}: unknown key '{key}'; known keys here: {', '.join(sorted(schema))}")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        full = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            optional = key == "database" and data.get(key) is None
            out[key] = None if optional else _apply(spec, data.get(key), full, where)
            continue
        types, default = spec
        value = data.get(key, default)
        if value is REQUIRED:
            raise ConfigError(f"{where}: '{full}' is required")
        if value is None:
            out[key] = None
            continue
        allowed = types if isinstance(types, tuple) else (types,)
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise ConfigError(f"{where}: '{full}' must be {_type_name(types)}, got {type(value).__name__}"
                              f" {str(value)[:40]!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}: '{full}' must not be negative, got {value}")
        out[key] = value
    return out


def _check_site(site: Any, where: str, key: str) -> str:
    if not isinstance(site, str) or not _SITE_RE.fullmatch(site):
        raise ConfigError(f"{where}: '{key}' must be a DIRAC site name like BES.IHEP-PBS.cn, got {str(site)[:40]!r}")
    return site


def _parse_targets(raw: Any, where: str) -> list[Target] | None:
    if isinstance(raw, str):
        if raw.strip().lower() == "all":
            return None
        raise ConfigError(f"{where}: 'targets' must be a list of sites or the word 'all', got {raw[:40]!r}")
    if not raw:
        raise ConfigError(f"{where}: 'targets' is empty; list at least one DIRAC site or write 'targets: all'")
    out: list[Target] = []
    for i, item in enumerate(raw):
        key = f"targets[{i}]"
        if isinstance(item, str):
            out.append(Target(_check_site(item, where, key)))
            continue
        if not isinstance(item, dict) or "site" not in item:
            raise ConfigError(f"{where}: '{key}' must be a site name or a mapping with 'site' and optional 'ces'")
        extra = sorted(set(item) - {"site", "ces"})
        if extra:
            raise ConfigError(f"{where}: unknown key '{key}.{extra[0]}'; known keys here: ces, site")
        site = _check_site(item["site"], where, f"{key}.site")
        ces = item.get("ces") or []
        if not isinstance(ces, list):
            raise ConfigError(f"{where}: '{key}.ces' must be a list of CE host names")
        if not ces:
            out.append(Target(site))
        for j, ce in enumerate(ces):
            if not isinstance(ce, str) or not _CE_RE.fullmatch(ce) or ce == "none":
                raise ConfigError(f"{where}: '{key}.ces[{j}]' must be a CE host name, got {str(ce)[:40]!r}")
            out.append(Target(site, ce))
    seen: set[tuple[str, str]] = set()
    for t in out:
        if t.key in seen:
            raise ConfigError(f"{where}: target {t} is listed twice in 'targets'; remove the duplicate")
        seen.add(t.key)
    return out


def _parse_time(value: Any, where: str, key: str) -> float:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: '{key}' must be an ISO 8601 time like 2026-01-31T08:00:00Z,"
                              f" got {value[:40]!r}") from None
    else:
        raise ConfigError(f"{where}: '{key}' must be an ISO 8601 time like 2026-01-31T08:00:00Z")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def parse_downtimes(raw: Any, where: str) -> list[Downtime]:
    """Validate a downtime list: mappings with site, optional ce, start, end, optional reason."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: downtimes must be a list of mappings with site, start and end")
    out = []
    for i, item in enumerate(raw):
        key = f"downtimes[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping with site, start and end")
        extra = sorted(set(item) - {"site", "ce", "start", "end", "reason"})
        if extra:
            raise ConfigError(f"{where}: unknown key '{key}.{extra[0]}'; known keys here: ce, end, reason, site, start")
        for need in ("site", "start", "end"):
            if need not in item:
                raise ConfigError(f"{where}: '{key}.{need}' is required")
        site = _check_site(item["site"], where, f"{key}.site")
        ce = item.get("ce")
        if ce is not None and (not isinstance(ce, str) or not _CE_RE.fullmatch(ce)):
            raise ConfigError(f"{where}: '{key}.ce' must be a CE host name")
        start = _parse_time(item["start"], where, f"{key}.start")
        end = _parse_time(item["end"], where, f"{key}.end")
        if end <= start:
            raise ConfigError(f"{where}: '{key}' ends before it starts; swap start and end")
        out.append(Downtime(site=site, ce=ce, start=start, end=end))
    return out


def load_downtimes(spec: Any, where: str) -> list[Downtime]:
    """Downtimes inline (a list) or from a YAML file (a path; re-read every cycle by the agents)."""
    if isinstance(spec, str):
        path = Path(spec)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{where}: 'downtimes' file {path}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise ConfigError(f"{where}: 'downtimes' file {path} is not valid YAML; fix the syntax") from None
        return parse_downtimes(data, str(path))
    return parse_downtimes(spec, where)


def _read_secret(path_str: str, where: str, key: str) -> str:
    path = Path(path_str)
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: '{key}' {path}: {exc.strerror}; point it at a readable file") from None
    if not secret:
        raise ConfigError(f"{where}: '{key}' {path} is empty; put the secret in it")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logging.getLogger("bes_probe_agent").warning("%s %s is readable by group/others; chmod 600 it", key, path)
    return secret


def _check(cfg: dict, where: str) -> None:
    probe, push, backend, db = cfg["probe"], cfg["pushgateway"], cfg["backend"], cfg["database"]
    if backend["type"] not in ("dirac", "local"):
        raise ConfigError(f"{where}: 'backend.type' must be 'dirac' or 'local', got {backend['type'][:40]!r}")
    if not _IDENT_RE.fullmatch(probe["job_group"]):
        raise ConfigError(f"{where}: 'probe.job_group' must be letters, digits, _ or -, got "
                          f"{probe['job_group'][:40]!r}")
    for key in ("period", "waiting_timeout", "running_timeout"):
        if probe[key] < 1:
            raise ConfigError(f"{where}: 'probe.{key}' must be at least 1 second")
    if probe["cpu_time"] < 1:
        raise ConfigError(f"{where}: 'probe.cpu_time' must be at least 1 second")
    if not all(isinstance(a, str) for a in probe["args"]):
        raise ConfigError(f"{where}: 'probe.args' must be a list of strings")
    if not all(isinstance(a, str) for a in backend["config_files"]):
        raise ConfigError(f"{where}: 'backend.config_files' must be a list of file names")
    for key in ("url", "probe_url"):
        url = push[key]
        if url is not None and not re.match(r"^https?://[^/\s]+/?$", url):
            raise ConfigError(f"{where}: 'pushgateway.{key}' must look like http://host:9091 (no path), got "
                              f"{url[:60]!r}")
    if push["password_file"] and not push["username"]:
        raise ConfigError(f"{where}: 'pushgateway.password_file' needs 'pushgateway.username'")
    _check_push_tls(push, where)
    _check_probe_push(push, where)
    for key in ("owner", "owner_group"):
        if probe[key] is not None and not _DIRAC_NAME_RE.fullmatch(probe[key]):
            raise ConfigError(f"{where}: 'probe.{key}' must be a DIRAC user/group name (letters, digits, _ . -),"
                              f" got {probe[key][:40]!r}")
    if push["timeout"] <= 0:
        raise ConfigError(f"{where}: 'pushgateway.timeout' must be positive")
    if cfg["interval"] < 1:
        raise ConfigError(f"{where}: 'interval' must be at least 1 second")
    if cfg["log_level"].lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: 'log_level' must be debug, info, warning or error")
    if db is not None:
        if not _IDENT_RE.fullmatch(db["jobdb"]):
            raise ConfigError(f"{where}: 'database.jobdb' must be a database name of letters, digits, _ or -")
        if not 1 <= db["port"] <= 65535:
            raise ConfigError(f"{where}: 'database.port' must be between 1 and 65535")
        for key in ("connect_timeout", "query_timeout"):
            if db[key] < 0.1:
                raise ConfigError(f"{where}: 'database.{key}' must be at least 0.1")
        if db["password"] is not None and db["password_file"] is not None:
            raise ConfigError(f"{where}: set only one of 'database.password' and 'database.password_file'")
        try:  # the exporter's checks of the same keys: readable PEM files that load
            check_ssl(db["ssl"])
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _readable_file(path: str, where: str, key: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or "not a file name"
        raise ConfigError(f"{where}: '{key}' {path[:80]!r}: {why}; give a readable PEM file") from None


def _check_push_tls(push: dict, where: str) -> None:
    """pushgateway.ca_file/client_cert/client_key: https only, readable, and loadable as the probe loads them."""
    from ..push import PushTarget

    given = [k for k in ("ca_file", "client_cert", "client_key") if push[k]]
    if not given:
        return
    if not push["url"].startswith("https://"):
        raise ConfigError(f"{where}: 'pushgateway.{given[0]}' needs an https:// 'pushgateway.url'")
    if push["client_key"] and not push["client_cert"]:
        raise ConfigError(f"{where}: 'pushgateway.client_key' needs 'pushgateway.client_cert' (the client certificate)")
    for key in given:
        _readable_file(push[key], where, f"pushgateway.{key}")
    try:
        PushTarget(push["url"], push["ca_file"], client_cert=push["client_cert"],
                   client_key=push["client_key"]).ssl_context()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = str(getattr(exc, "reason", None) or exc).splitlines()[0][:100]
        raise ConfigError(f"{where}: 'pushgateway' TLS files do not load ({reason}); give the CA of the "
                          "Pushgateway's certificate as ca_file, and a PEM certificate with its unencrypted key as"
                          " client_cert/client_key") from None


def _check_probe_push(push: dict, where: str) -> None:
    """The probes' own Pushgateway credentials, shipped with each probe job ('{site}'/'{ce}' per target)."""
    if push["probe_password_file"] and not push["probe_user"]:
        raise ConfigError(f"{where}: 'pushgateway.probe_password_file' needs 'pushgateway.probe_user'")
    if push["probe_user"] and not push["probe_password_file"]:
        raise ConfigError(f"{where}: 'pushgateway.probe_user' needs 'pushgateway.probe_password_file'")
    if push["probe_client_key"] and not push["probe_client_cert"]:
        raise ConfigError(f"{where}: 'pushgateway.probe_client_key' needs 'pushgateway.probe_client_cert'")
    user = push["probe_user"]
    if user is not None and not _PUSH_USER_RE.fullmatch(render(user, "BES.X.cn", "none")):
        raise ConfigError(f"{where}: 'pushgateway.probe_user' must be a user name (letters, digits, _ . @ -,"
                          f" '{{site}}' and '{{ce}}' allowed), got {user[:40]!r}")
    names = {}
    for key in PROBE_FILES:
        path = push[key]
        if path is None:
            continue
        if "{" not in path:
            _readable_file(path, where, f"pushgateway.{key}")
        name = os.path.basename(render(path, "BES.X.cn", "none"))
        if name in names:
            raise ConfigError(f"{where}: 'pushgateway.{key}' and 'pushgateway.{names[name]}' have the same file"
                              " name; they land side by side in the job's directory, rename one")
        names[name] = key


def render(template: str, site: str, ce: str) -> str:
    """``{site}`` and ``{ce}`` of a per-target setting replaced by the target's site and CE label."""
    return template.replace("{site}", site).replace("{ce}", ce)


def parse(data: Any, where: str = "<config>") -> Config:
    """Validate a parsed YAML document."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the file must be a YAML mapping with at least 'targets' and 'pushgateway'")
    cfg = _apply(SCHEMA, data, "", where)
    _check(cfg, where)
    targets = _parse_targets(cfg["targets"], where)
    if targets is None and cfg["backend"]["type"] == "local":
        raise ConfigError(f"{where}: 'targets: all' needs 'backend.type: dirac'; list the sites for the local back-end")
    downtimes = load_downtimes(cfg["downtimes"], where)
    db = cfg["database"]
    db_password = ""
    if db is not None:
        env = os.environ.get(PASSWORD_ENV)
        if env is not None:
            db_password = env
        elif db["password_file"]:
            db_password = _read_secret(db["password_file"], where, "database.password_file")
        else:
            db_password = db["password"] or ""
    push = cfg["pushgateway"]
    push_password = None
    if push["password_file"]:
        push_password = _read_secret(push["password_file"], where, "pushgateway.password_file")
    for key, user in (("url", "username"), ("probe_url", "probe_user")):
        url = push[key] or push["url"]
        if push[user] and url.startswith("http://"):
            logging.getLogger("bes_probe_agent").warning(
                "%s: 'pushgateway.%s' is plain http: the password of 'pushgateway.%s' is not encrypted; use"
                " https:// and 'pushgateway.ca_file'", where, key, user)
    state_dir = Path(cfg["state_dir"])
    return Config(targets=targets, probe=cfg["probe"], pushgateway=cfg["pushgateway"], backend=cfg["backend"],
                  database=db, downtimes=downtimes,
                  downtimes_file=Path(cfg["downtimes"]) if isinstance(cfg["downtimes"], str) else None,
                  state_dir=state_dir, interval=float(cfg["interval"]),
                  log_level=cfg["log_level"].lower(), source=where, db_password=db_password,
                  push_password=push_password)


def load(path: str | os.PathLike) -> Config:
    """Load and validate a config file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror}; give the path of a readable YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{at} ({problem}); fix the syntax") from None
    return parse(data, str(path))
