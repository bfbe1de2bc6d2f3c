"""Probe configuration: loading (YAML, PyYAML bundled in the pyz), validation, label safety.

Every problem raises :class:`ConfigError` with a one-line message that names the option and the fix;
the CLI turns it into exit code 3.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from typing import Any, Dict, List

import yaml

LABEL_MAX = 128
_LABEL_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")  # 128 = LABEL_MAX; used with fullmatch
LABEL_HELP = f"use only letters, digits, '.', '_', '-' (1-{LABEL_MAX} characters, not only dots)"

TOP_LEVEL_KEYS = ("site", "ce", "timeout", "allowed_sites", "pushgateway", "checks")
PUSH_DEFAULTS: Dict[str, Any] = {"url": None, "ca_file": None, "user": None, "password_file": None,
                                 "client_cert": None, "client_key": None, "timeout": 10.0, "retries": 3,
                                 "backoff": 1.0}


class ConfigError(ValueError):
    """A usage or configuration error (exit code 3); the message is one line."""


def valid_label(value: str) -> bool:
    """True if ``value`` is safe as a grouping-key/label value (no path tricks, bounded length)."""
    return isinstance(value, str) and bool(_LABEL_RE.fullmatch(value)) and value.strip(".") != ""


def validate_label(option: str, value: Any) -> str:
    """Return ``value`` if it is a safe label value, else raise ConfigError naming ``option``."""
    if not isinstance(value, str) or not valid_label(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(f"{option}: {shown} is not a valid value: {LABEL_HELP}")
    return value


def sanitize_label(value: str, fallback: str = "unknown") -> str:
    """Map any string (e.g. a host name) into the label alphabet: lower-case, bad characters to '_'."""
    cleaned = re.sub(r"[^a-z0-9._-]", "_", (value or "").strip().lower())[:LABEL_MAX]
    return cleaned if valid_label(cleaned) else fallback


def load_file(path: str) -> Any:
    """Read a YAML (or JSON) file with PyYAML's safe_load (the pyz carries PyYAML's pure-Python code)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"--config.file: cannot read {path}: {why}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"--config.file: {path} is not valid YAML{at} ({problem}); fix the syntax") from None


def _number(option: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{option}: expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def check_options(name: str, given: Any, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """Merge one check's options over its defaults, type-checking each against the default's type."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError(f"checks.{name}: expected a mapping of options, got {type(given).__name__}")
    merged = dict(defaults)
    for key, value in given.items():
        option = f"checks.{name}.{key}"
        if key not in defaults:
            raise ConfigError(f"checks.{name}: unknown option {key!r} (known: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{option}: expected true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            value = _number(option, value)
        elif isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{option}: expected a list of strings, got {value!r}")
        elif value is not None and not isinstance(value, str):
            raise ConfigError(f"{option}: expected a string, got {value!r}")
        merged[key] = value
    return merged


def parse_allowed_sites(data: Any, origin: str) -> Dict[str, List[str]]:
    """Normalise an allowed-sites list/mapping to ``{site: [allowed CEs] or []}`` ([] = any CE)."""
    result: Dict[str, List[str]] = {}
    if isinstance(data, list):
        data = {s: None for s in data}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a list of sites or a mapping site -> list of CEs")
    for site, ces in data.items():
        validate_label(f"{origin} site", site)
        if ces is None:
            ces = []
        if not isinstance(ces, list):
            raise ConfigError(f"{origin}: CEs of {site} must be a list")
        result[site] = [validate_label(f"{origin} CE of {site}", ce) for ce in ces]
    return result


def read_allowed_sites_file(path: str) -> Dict[str, List[str]]:
    """Read ``--allowed-sites``: one site per line, optionally followed by its allowed CEs; # comments."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"--allowed-sites: cannot read {path}: {exc.strerror or exc}") from None
    data: Dict[str, Any] = {}
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words:
            data.setdefault(words[0], [])
            data[words[0]].extend(words[1:])
    if not data:
        raise ConfigError(f"--allowed-sites: {path} lists no site; add one site name per line")
    return parse_allowed_sites(data, "--allowed-sites")


def check_allowed(site: str, ce: str, allowed: Dict[str, List[str]] | None, origin: str) -> None:
    """Refuse a site (or CE) that is not in the allowed list, if a list was given."""
    if allowed is None:
        return
    if site not in allowed:
        raise ConfigError(f"--site: {site} is not among the allowed sites in {origin}; "
                          f"this probe was not sent to that site")
    if allowed[site] and ce not in allowed[site]:
        raise ConfigError(f"--ce: {ce} is not an allowed CE of {site} in {origin}")


def read_secret(path: str, option: str) -> str:
    """Read a password from a file (first line, stripped); warn if group/world readable."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            secret = fh.readline().strip()
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"bes-probe: warning: {option} {path} is readable by group/others; chmod 600 it",
              file=sys.stderr)
    if not secret:
        raise ConfigError(f"{option}: {path} is empty; put the password on its first line")
    return secret


def validate_top(cfg: Any, origin: str) -> Dict[str, Any]:
    """Check the config's top level: a mapping with known keys only."""
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"--config.file: {origin} must be a mapping at top level")
    for key in cfg:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"--config.file: unknown key {key!r} in {origin} "
                              f"(known: {', '.join(TOP_LEVEL_KEYS)})")
    push = cfg.get("pushgateway") or {}
    if not isinstance(push, dict):
        raise ConfigError("pushgateway: expected a mapping (url, ca_file, user, password_file, ...)")
    for key in push:
        if key not in PUSH_DEFAULTS:
            raise ConfigError(f"pushgateway: unknown option {key!r} (known: {', '.join(PUSH_DEFAULTS)})")
    return cfg
