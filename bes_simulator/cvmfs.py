"""Per-site fake CVMFS roots for the probe's ``cvmfs`` check (the probe-only fault).

Layout under the state directory::

    cvmfs/<SITE>/<repository>/            healthy: a readable directory (with .cvmfsdirtab and README)
    cvmfs/<SITE>/<repository> -> (gone)   broken: a dangling symlink, so listing or opening anything
                                          in it fails with ENOENT even for root (chmod would not stop root)
    cvmfs/status.json                     {"<SITE>": "ok" | "broken"}

Point the probe of site ``S`` at ``<state-dir>/cvmfs/S/<repository>`` instead of ``/cvmfs/<repository>``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


class FakeCvmfs:
    """Creates, breaks and repairs the fake repositories of every site."""

    def __init__(self, root: Path, sites: list[str], repositories: list[str]):
        self.root = root
        self.repositories = repositories
        self.state = dict.fromkeys(sites, "ok")
        for site in sites:
            self.repair(site)

    def _repo(self, site: str, repo: str) -> Path:
        return self.root / site / repo

    def repair(self, site: str) -> None:
        for repo in self.repositories:
            path = self._repo(site, repo)
            if path.is_symlink() or path.is_file():
                path.unlink()
            path.mkdir(parents=True, exist_ok=True)
            (path / ".cvmfsdirtab").write_text("/*\n")
            (path / "README").write_text(f"Simulated CVMFS repository {repo} at {site} (bes-simulate).\n")
        self.state[site] = "ok"
        self._write_status()

    def break_(self, site: str) -> None:
        for repo in self.repositories:
            path = self._repo(site, repo)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.is_symlink():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f"/nonexistent/cvmfs-mount-lost/{repo}", path)
        self.state[site] = "broken"
        self._write_status()

    def _write_status(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / ".status.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.root / "status.json")
