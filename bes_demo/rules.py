"""The demo's Prometheus rules: the shipped rules on a compressed clock.

The simulator writes simulated second ``t`` at database time ``origin + t / speed``, so every duration
DIRAC-side is ``speed`` times shorter in real time. The demo renders ``alerts/src`` with
``alerts/thresholds.yml`` exactly as ``alerts/build.py`` does, then divides by ``speed``:

* every ``*_for`` and ``*_seconds`` threshold (``for:`` durations, ages, horizons);
* every range selector and ``for:`` written in the sources themselves (``[30m]``, ``[1d]``, ``for: 5m``).

Except ``monitoring.yml``: its subjects (the exporter answering scrapes, the Pushgateway, pushes) live on
the real clock, not the simulated one, so its ``for:`` stay as shipped (5 min of a scrape failing, not 5 s).
Expressions, ratios, counts and recording-rule names stay as shipped
(``site:dirac_jobs_failed:ratio_rate30m`` still means "30 simulated minutes"). The exporter's time
settings are divided the same way (:func:`exporter_time_settings`).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path
from types import ModuleType

from bes_exporter.config import SCHEMA as EXPORTER_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "alerts" / "build.py"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(?:\d+(?:ms|[smhdwy]))+$")
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
# A range selector or subquery ([30m], [1h:1m]) and a literal `for:` line in the rule text.
_RANGE = re.compile(r"\[((?:\d+(?:ms|[smhdwy]))+)(?::((?:\d+(?:ms|[smhdwy]))+))?\]")
REAL_CLOCK = {"monitoring.yml"}  # rule files about the monitoring itself: not scaled
_FOR = re.compile(r"^(\s*for:\s*)((?:\d+(?:ms|[smhdwy]))+)\s*$", re.MULTILINE)


def duration_seconds(text: str) -> float:
    """``1h30m`` -> 5400.0 (Prometheus duration syntax)."""
    if not _DURATION.match(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: whole seconds when exact, else milliseconds (at least 1ms)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def whole_seconds(seconds: float, speed: float) -> int:
    """A simulated number of seconds on the real clock, rounded to whole seconds (at least 1)."""
    return max(1, round(seconds / speed))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


def load_build() -> ModuleType:
    """alerts/build.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("alerts_build", BUILD)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{BUILD} is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scaled_thresholds(values: dict, speed: float) -> dict:
    """thresholds.yml with every duration (``*_for``, ``*_window``) and ``*_seconds`` threshold divided by
    ``speed``.

    ``heartbeat_lag_seconds`` is rounded like the exporter's buckets so it stays one of their bounds.
    """
    out = dict(values)
    for key, value in values.items():
        if isinstance(value, str) and _DURATION.match(value):  # `for:` durations and ranges (*_for, *_window)
            out[key] = format_duration(duration_seconds(value) / speed)
        elif key == "heartbeat_lag_seconds":
            out[key] = whole_seconds(float(value), speed)
        elif key.endswith("_seconds"):
            out[key] = _number(float(value) / speed)
    return out


def scale_text(text: str, speed: float) -> str:
    """Divide the literal range selectors and ``for:`` durations of a rule source by ``speed``.

    ``[[placeholders]]`` are left alone: their values are scaled by :func:`scaled_thresholds`.
    """
    def scale_range(m: re.Match) -> str:
        rng = format_duration(duration_seconds(m.group(1)) / speed)
        if m.group(2):
            return f"[{rng}:{format_duration(duration_seconds(m.group(2)) / speed)}]"
        return f"[{rng}]"

    def scale_for(m: re.Match) -> str:
        return m.group(1) + format_duration(duration_seconds(m.group(2)) / speed)

    return _FOR.sub(scale_for, _RANGE.sub(scale_range, text))


DEMO_HEADER = ("# DEMO RULES: the shipped rules on a clock compressed {speed:g}x (bes_demo/rules.py):\n"
               "# every duration and *_seconds threshold divided by {speed:g}; names and expressions unchanged.\n")


def render(speed: float, out: Path) -> list[Path]:
    """Write the demo rule files into ``out`` (replacing older ones); returns their paths."""
    build = load_build()
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(build.SRC.glob("*.yml")):
            text = src.read_text()
            (Path(tmp) / src.name).write_text(text if src.name in REAL_CLOCK else scale_text(text, speed))
        build.SRC = Path(tmp)  # this module's own copy of build.py: the shipped sources stay untouched
        texts = build.render_all(scaled_thresholds(build.load_thresholds(), speed))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yml"):
        old.unlink()
    paths = []
    for name, text in sorted(texts.items()):
        path = out / name
        path.write_text(DEMO_HEADER.format(speed=speed) + text)
        paths.append(path)
    return paths


def exporter_time_settings(speed: float) -> dict:
    """The exporter's settings measured in simulated time, divided by ``speed`` (whole seconds)."""
    defaults = {section: {k: spec[1] for k, spec in EXPORTER_SCHEMA[section].items()}
                for section in ("heartbeat", "hosts", "owners")}
    hosts = defaults["hosts"]
    return {
        "heartbeat": {"buckets": sorted({whole_seconds(b, speed) for b in defaults["heartbeat"]["buckets"]})},
        "hosts": {"fast_failure_seconds": whole_seconds(hosts["fast_failure_seconds"], speed),
                  "window_seconds": whole_seconds(hosts["window_seconds"], speed)},
        "owners": {"window_seconds": whole_seconds(defaults["owners"]["window_seconds"], speed)},
    }
