"""The agents' small shared state file (``state_dir/state.json``), updated under an exclusive file lock.

- ``pending``:  state key -> {job_id, submitted, backend}: the probe job submitted last per target,
  until the reaper has seen it final or killed it;
- ``finished``: jobs the submitter found final before the reaper did (handed over to it);
- ``events``:   state key -> {status, time, job_id}: the latest timeout class (bad/busy/unknown) or
  ``failed`` (a probe job that ended without the probe's own result) per target;
- ``submitted``: state key -> Unix time of the latest submission;
- ``harvests``: state key -> {outcome: count}: results harvested from probe jobs' output (``pushed``,
  ``refused``, ``missing``), pushed as the counter ``dirac_probe_harvests_total{outcome}``;
- ``identity``: {owner, owner_group} of the agents' own probe jobs in JobDB, learnt from a job they
  submitted (unless ``probe.owner``/``probe.owner_group`` are configured).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Iterator

EMPTY = {"pending": {}, "finished": [], "events": {}, "submitted": {}, "identity": {}, "harvests": {}}


class StateError(Exception):
    """The state directory or file is unusable (one line)."""


class StateStore:
    """Read-modify-write of the JSON state under ``flock`` (submit and reap may run concurrently)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / "state.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict]:
        """Yield the state dict; it is written back atomically when the block ends without error."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = open(self.dir / "state.lock", "a")  # noqa: SIM115 - held for the block
        except OSError as exc:
            raise StateError(f"state directory {self.dir}: {exc.strerror}; set 'state_dir' to a writable "
                             "directory") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            yield state
            tmp = self.path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
                os.replace(tmp, self.path)
            except OSError as exc:
                raise StateError(f"cannot write {self.path}: {exc.strerror}") from None

    def read(self) -> dict:
        """A snapshot of the state (not locked)."""
        return self._read()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError):
            # A damaged state file must not stop the agents: start afresh (pending jobs are
            # rediscovered from JobDB by job group).
            data = {}
        if not isinstance(data, dict):
            data = {}
        for key, empty in EMPTY.items():
            if not isinstance(data.get(key), type(empty)):
                data[key] = type(empty)()
        return data
