"""Reading exposition text back into {(sample name, labels): value} for assertions."""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bes_exporter.collector import DiracCollector
from bes_exporter.config import parse
from bes_exporter.scrapers import SCRAPERS


class Samples(dict):
    """Samples keyed by (name, frozenset of label items)."""

    def get_value(self, name: str, **labels) -> float | None:
        return self.get((name, frozenset(labels.items())))

    def v(self, name: str, **labels) -> float:
        value = self.get_value(name, **labels)
        assert value is not None, f"no sample {name}{labels}; have: {sorted(k for k in self if k[0] == name)[:20]}"
        return value

    def series(self, name: str) -> list[dict]:
        return [dict(labels) for (n, labels) in self if n == name]

    def nonzero(self, name: str, *labels: str) -> Counter:
        """The non-zero samples of ``name`` summed by the values of ``labels``."""
        out: Counter = Counter()
        for (n, items), value in self.items():
            if n == name and value:
                d = dict(items)
                out[tuple(d[k] for k in labels)] += int(value)
        return out


def parse_text(text: str) -> Samples:
    out = Samples()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


class Exporter:
    """An in-process exporter (the real collector and registry) over a test's DIRAC databases."""

    def __init__(self, config: dict, scrapers=SCRAPERS):
        self.collector = DiracCollector(parse(config, "test-config"), scrapers)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

    def scrape(self) -> Samples:
        return parse_text(generate_latest(self.registry).decode())


def http_scrape(url: str, timeout: float = 30) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return parse_text(resp.read().decode())
