"""The dashboards' JSON against Grafana's own schema, as grafana-foundation-sdk generates it from Grafana's
CUE kinds (the Grafana 10.1 release of the SDK: our dashboards claim Grafana >= 10).

Decoding with the SDK's models keeps only the fields the schema knows (per panel plugin for `options` and
`fieldConfig.defaults.custom`); encoding again and comparing finds every misspelt or misplaced key. Fields
the schema types as enums must hold one of the enum's values. Not covered by the schema: override
properties and transformation options (free-form there)."""

from __future__ import annotations

import copy
import enum
import json
import sys
import typing
from pathlib import Path

import pytest

if sys.version_info < (3, 11):
    pytest.skip("grafana-foundation-sdk needs Python >= 3.11", allow_module_level=True)
try:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard
except ImportError:
    pytest.fail("grafana-foundation-sdk is missing: run make setup (setup.cfg, extra `test`)", pytrace=False)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# Written by Grafana's own frontend for query variables (the query's display text), absent from the schema.
NOT_IN_SCHEMA = {"definition"}

register_default_plugins()


def lost_in_schema(ours: object, decoded: object, path: str = "") -> list[str]:
    """Keys of ``ours`` that Grafana's schema dropped, and values it changed."""
    if isinstance(ours, dict) and isinstance(decoded, dict):
        return [lost for k, v in ours.items()
                for lost in ([f"{path}/{k}"] if k not in decoded else lost_in_schema(v, decoded[k], f"{path}/{k}"))]
    if isinstance(ours, list) and isinstance(decoded, list) and len(ours) == len(decoded):
        return [lost for i, (a, b) in enumerate(zip(ours, decoded)) for lost in lost_in_schema(a, b, f"{path}[{i}]")]
    return [] if ours == decoded else [f"{path}: {ours!r} became {decoded!r}"]


def enum_types(hint: object) -> list[type[enum.Enum]]:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [hint]
    return [e for arg in typing.get_args(hint) for e in enum_types(arg)]


def bad_enum_values(model: object, path: str = "") -> list[str]:
    """Fields typed as an enum whose value is none of the enum's (decoding keeps such strings as they are)."""
    if isinstance(model, (list, dict)):
        items = enumerate(model) if isinstance(model, list) else model.items()
        return [bad for k, v in items for bad in bad_enum_values(v, f"{path}/{k}")]
    if not hasattr(model, "to_json") or isinstance(model, enum.Enum):
        return []
    bad = []
    for name, hint in typing.get_type_hints(type(model)).items():
        value, kinds = getattr(model, name, None), enum_types(hint)
        if kinds and value is not None and not isinstance(value, enum.Enum):
            if not any(value in kind._value2member_map_ for kind in kinds):
                bad.append(f"{path}/{name}: {value!r} is no {'/'.join(k.__name__ for k in kinds)}")
        bad += bad_enum_values(value, f"{path}/{name}")
    return bad


def schema_problems(dash: dict) -> list[str]:
    model = Dashboard.from_json(copy.deepcopy(dash))
    decoded = json.loads(JSONEncoder().encode(model))
    lost = [p for p in lost_in_schema(dash, decoded) if p.rsplit("/", 1)[-1] not in NOT_IN_SCHEMA]
    return lost + bad_enum_values(model)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_is_valid_for_grafanas_schema(path):
    assert schema_problems(json.loads(path.read_text())) == []


def test_schema_check_finds_misspelt_keys_and_unknown_enum_values():
    dash = json.loads((ROOT / "grafana" / "dashboards" / "dirac-site.json").read_text())
    series = next(p for p in dash["panels"] if p["type"] == "timeseries")
    series["targets"][0]["legendFormatt"] = "{{site}}"
    series["fieldConfig"]["defaults"]["unitt"] = "s"
    series["options"]["legend"] = {"displayMode": "tabel", "placement": "right"}
    gauge = next(p for p in dash["panels"] if p["type"] == "bargauge")
    gauge["options"]["displayMode"] = "gradiant"
    problems = schema_problems(dash)
    assert len(problems) == 4, problems
    assert any(p.endswith("/legendFormatt") for p in problems) and any(p.endswith("/unitt") for p in problems)
    assert any("'tabel'" in p for p in problems) and any("'gradiant'" in p for p in problems)
