"""The exporter's YAML configuration: every key validated, one-line errors that name the key."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dirac_db.connection import check_ssl

PASSWORD_ENV = "BES_EXPORTER_DB_PASSWORD"


class ConfigError(Exception):
    """A configuration problem, worded as one line that names the file and key and says the fix."""


# key -> (type(s), default). A dict value is a nested section.
SCHEMA: dict[str, Any] = {
    "database": {
        "host": (str, "127.0.0.1"),
        "port": (int, 3306),
        "user": (str, "dirac_monitor"),
        "password": (str, None),
        "password_file": (str, None),
        "jobdb": (str, "JobDB"),
        "pilotdb": (str, "PilotAgentsDB"),
        "rssdb": (str, "ResourceStatusDB"),
        "logdb": (str, "JobLoggingDB"),
        "connect_timeout": ((int, float), 5),
        "query_timeout": ((int, float), 10),
        "ssl": {
            "ca": (str, None),
            "cert": (str, None),
            "key": (str, None),
        },
    },
    "probes": {
        "job_group": (str, "bes_probe"),
    },
    "jobs": {
        "overlap_seconds": (int, 120),
        # the active jobs not Running/Completing are re-read at least every resync_seconds, at least
        # resync_rows of them per scrape (bes_exporter/sweep.py)
        "resync_seconds": (int, 1800),
        "resync_rows": (int, 1000),
        "finished_retention_seconds": (int, 3600),
        "page_rows": (int, 5000),
        "max_rows_per_scrape": (int, 200000),
    },
    "heartbeat": {
        # bucket bounds of dirac_running_jobs_heartbeat_age_seconds; must include the alerts'
        # heartbeat_lag_seconds and reach past StalledJobAgent's 4500 s and 11700 s
        "buckets": (list, [300, 900, 1800, 2700, 3600, 4500, 7200, 11700]),
        # Running/Completing jobs (their heartbeat ages) re-read at least this often, this many per scrape
        "period_seconds": (int, 1200),
        "rows": (int, 1500),
    },
    "pilots": {
        # active pilots re-read at least every resync_seconds, at least resync_rows of them per scrape: the
        # only way to see a pilot change (PilotAgents has no index on LastUpdateTime)
        "resync_seconds": (int, 1800),
        "resync_rows": (int, 1500),
    },
    "hosts": {
        "window_seconds": (int, 86400),
        "max_per_site": (int, 500),
        "fast_failure_seconds": (int, 300),
    },
    "owners": {  # per-owner job counters: the max_owners busiest owners in the window, the rest "other"
        "max_owners": (int, 100),
        "window_seconds": (int, 86400),
    },
    "instance": (str, None),
    "vo": (str, None),  # DIRAC >= 9.1: count only this VO's jobs and pilots (an instance shared by several VOs)
}

MAX_NUMBER = 10**9  # ~31 years in seconds: any larger number is a typo and overflows datetime arithmetic
_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join({int: "integer", float: "number", str: "string", list: "list"}[t] for t in types)


def _apply(schema: dict, data: Any, path: str, where: str) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{path or 'top level'}' must be a mapping of keys; fix the indentation")
    unknown = sorted(set(data) - set(schema), key=str)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        key = key[:60] if key.isprintable() else repr(key[:60])[1:-1]  # one line, whatever the YAML held
        raise ConfigError(f"{where}: unknown key '{key}'; known keys here: {', '.join(sorted(schema))}")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        full = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            out[key] = _apply(spec, data.get(key), full, where)
            continue
        types, default = spec
        value = data.get(key, default)
        if value is None:
            if default is not None:
                raise ConfigError(f"{where}: '{full}' is empty; give a {_type_name(types)} or remove the key")
            out[key] = None
            continue
        allowed = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ConfigError(f"{where}: '{full}' must be a {_type_name(types)}, got {type(value).__name__}"
                              f" {str(value)[:40]!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: '{full}' must be a finite number, got {value}")
        if isinstance(value, (int, float)) and value < 0:
            raise ConfigError(f"{where}: '{full}' must not be negative, got {value}")
        if isinstance(value, (int, float)) and value > MAX_NUMBER:
            raise ConfigError(f"{where}: '{full}' must be at most {MAX_NUMBER}, got {str(value)[:40]}")
        out[key] = value
    return out


def _defaults(section: str) -> dict:
    return {k: (list(spec[1]) if isinstance(spec[1], list) else spec[1]) for k, spec in SCHEMA[section].items()}


@dataclass
class Config:
    """Validated configuration (all sections with defaults filled in)."""

    database: dict
    probes: dict
    jobs: dict
    hosts: dict
    heartbeat: dict = field(default_factory=lambda: _defaults("heartbeat"))
    owners: dict = field(default_factory=lambda: _defaults("owners"))
    pilots: dict = field(default_factory=lambda: _defaults("pilots"))
    instance: str | None = None
    vo: str | None = None
    source: str = "<defaults>"
    password: str = field(default="", repr=False)


def _check_identifiers(cfg: dict, where: str) -> None:
    for key in ("jobdb", "pilotdb", "rssdb", "logdb"):
        name = cfg["database"][key]
        if not name or not set(name) <= _IDENT_OK | {"-"} or len(name) > 64:
            raise ConfigError(f"{where}: 'database.{key}' must be a database name of letters, digits, _ or -;"
                              f" got {name[:40]!r}")
    for key, minimum in (("port", 1), ("connect_timeout", 0.1), ("query_timeout", 0.1)):
        if cfg["database"][key] < minimum:
            raise ConfigError(f"{where}: 'database.{key}' must be at least {minimum}")
    for key in ("connect_timeout", "query_timeout"):
        if cfg["database"][key] > 3600:
            raise ConfigError(f"{where}: 'database.{key}' must be at most 3600 seconds")
    if cfg["database"]["port"] > 65535:
        raise ConfigError(f"{where}: 'database.port' must be at most 65535")
    vo = cfg["vo"]
    if vo is not None and (not vo or not set(vo) <= _IDENT_OK | {"-", "."} or len(vo) > 32):
        raise ConfigError(f"{where}: 'vo' must be a DIRAC VO name of letters, digits, _, - or . (at most 32);"
                          f" got {vo[:40]!r}")
    if cfg["jobs"]["page_rows"] < 100:
        raise ConfigError(f"{where}: 'jobs.page_rows' must be at least 100")
    buckets = cfg["heartbeat"]["buckets"]
    if not buckets or not all(isinstance(b, int) and not isinstance(b, bool) and 0 < b <= MAX_NUMBER
                                         for b in buckets) \
            or buckets != sorted(set(buckets)):
        raise ConfigError(f"{where}: 'heartbeat.buckets' must be a list of increasing positive whole seconds,"
                          f" e.g. [300, 900, 1800, 4500, 11700]; got {str(buckets)[:60]}")
    for key in ("hosts.max_per_site", "hosts.window_seconds", "owners.max_owners", "owners.window_seconds",
                "jobs.resync_rows", "heartbeat.rows", "pilots.resync_rows"):
        section, name = key.split(".")
        if cfg[section][name] < 1:
            raise ConfigError(f"{where}: '{key}' must be at least 1")


def _check_ssl(cfg: dict, where: str) -> None:
    """database.ssl: readable PEM files that load; TLS to MariaDB is on when any of ca/cert/key is set."""
    try:
        check_ssl(cfg["database"]["ssl"])
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _not_text(exc: Exception) -> str:
    return "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not a file name"


def _read_password(cfg: dict, where: str) -> str:
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    db = cfg["database"]
    if db["password"] is not None and db["password_file"] is not None:
        raise ConfigError(f"{where}: set only one of 'database.password' and 'database.password_file'")
    if db["password_file"]:
        path = Path(db["password_file"])
        try:
            mode = path.stat().st_mode
            secret = path.read_text().strip()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
            shown = str(path) if str(path).isprintable() else repr(str(path)[:80])
            raise ConfigError(f"{where}: 'database.password_file' {shown}: "
                              f"{getattr(exc, 'strerror', None) or _not_text(exc)}; "
                              "point it at a readable file holding the password") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            import logging

            logging.getLogger("bes_exporter").warning(
                "database.password_file %s is readable by group/others; chmod 600 it", path)
        return secret
    return db["password"] or ""


def parse(data: Any, where: str = "<config>") -> Config:
    cfg = _apply(SCHEMA, data, "", where)
    _check_identifiers(cfg, where)
    _check_ssl(cfg, where)
    password = _read_password(cfg, where)
    if cfg["database"]["password"] is not None:
        cfg["database"]["password"] = "<hidden>"  # the secret lives only in Config.password (not in repr)
    return Config(database=cfg["database"], probes=cfg["probes"], jobs=cfg["jobs"], hosts=cfg["hosts"],
                  heartbeat=cfg["heartbeat"], owners=cfg["owners"], pilots=cfg["pilots"],
                  instance=cfg["instance"], vo=cfg["vo"], source=where, password=password)


def load(path: str | None) -> Config:
    """Load and validate a config file (``None``: defaults only)."""
    if path is None:
        return parse({}, "<defaults>")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"--config.file {path}: {exc.strerror}; give the path of a readable YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{at} ({problem}); fix the syntax") from None
    return parse(data, path)
