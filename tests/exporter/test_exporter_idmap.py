"""``IdMap``, the sorted-array store of the active jobs and pilots, behaves as a dict of IDs whatever the
order of inserts and removals: random operations against a dict, with merges and compactions every few
operations (seeded, so a failure replays)."""

from __future__ import annotations

import random

import pytest

from bes_exporter import active
from bes_exporter.active import IdMap


@pytest.mark.parametrize("seed", range(20))
def test_idmap_is_a_dict_of_ids(seed, monkeypatch):
    monkeypatch.setattr(active, "MERGE_ROWS", 1 + seed % 4)  # merges and compactions within a few operations
    rng = random.Random(seed)
    m, ref = IdMap(), {}
    for _ in range(400):
        op, key = rng.choice(("set", "set", "pop", "pop", "merge", "between")), rng.randrange(40 + seed)
        if op == "set":
            m[key] = ref[key] = rng.randrange(2**64 - 1)
        elif op == "pop":
            assert m.pop(key) == ref.pop(key, None)
        elif op == "merge":
            m.merge()
        else:
            m.merge()
            assert list(m.between(key, key + 10)) == sorted((k, v) for k, v in ref.items() if key < k <= key + 10)
            assert [k for k, _ in m.between(key, None)] == sorted(k for k in ref if k > key)
        assert len(m) == len(ref)
        assert [m.get(k) for k in range(45 + seed)] == [ref.get(k) for k in range(45 + seed)]
    assert sorted(m.values()) == sorted(ref.values())
