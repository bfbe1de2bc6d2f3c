"""Build ``bes-probe.pyz``: one file a probe job ships, runnable by any Python >= 3.9, stdlib only.

    python -m probe_pushgateway.build OUTFILE

The archive holds the probe's own modules (not the agents or this builder) and copies of the
pure-Python ``prometheus_client`` and ``yaml`` (PyYAML) packages taken from the installed ones at build
time, with their licence files (prometheus_client's optional twisted/aiohttp/django integrations and
PyYAML's C extension are left out: PyYAML falls back to its pure-Python code). Entries are sorted and
time-stamped 1980-01-01, so the same sources give the same bytes.
"""

from __future__ import annotations

import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import Iterator, Tuple

PROBE_MODULES = ("__init__.py", "__main__.py", "cli.py", "config.py", "push.py")
# (import name, distribution, sub-packages left out): pure-Python libraries shipped inside the pyz
BUNDLED = (("prometheus_client", "prometheus_client", {"twisted", "aiohttp", "django"}), ("yaml", "PyYAML", set()))
MAIN = '''"""bes-probe: worker-node checks pushed to a Prometheus Pushgateway (run: python3 bes-probe.pyz -h)."""
import sys

if sys.version_info < (3, 9):
    sys.exit("bes-probe: needs Python >= 3.9, this is %d.%d" % sys.version_info[:2])
from probe_pushgateway.cli import main

sys.exit(main())
'''
SHEBANG = b"#!/usr/bin/env python3\n"
EPOCH = (1980, 1, 1, 0, 0, 0)


def _files() -> Iterator[Tuple[str, bytes]]:
    """(archive name, content) of everything that goes into the pyz."""
    here = Path(__file__).resolve().parent
    for name in PROBE_MODULES:
        yield f"probe_pushgateway/{name}", (here / name).read_bytes()
    for path in sorted((here / "checks").glob("*.py")):
        yield f"probe_pushgateway/checks/{path.name}", path.read_bytes()

    for module, dist_name, skip in BUNDLED:
        yield from _bundled(module, dist_name, skip | {"__pycache__"})
    yield "__main__.py", MAIN.encode()


def _bundled(module: str, dist_name: str, skip: set) -> Iterator[Tuple[str, bytes]]:
    """The pure-Python files of an installed package, its licence files and its version."""
    from importlib import import_module
    from importlib.metadata import distribution

    root = Path(import_module(module).__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and path.suffix in (".py", ".typed") and not (skip & set(rel.parts)):
            yield f"{module}/{rel.as_posix()}", path.read_bytes()
    dist = distribution(dist_name)
    for f in dist.files or []:
        if Path(f.name).name.upper().startswith(("LICENSE", "NOTICE")):
            yield f"{module}/{Path(f.name).name}", Path(dist.locate_file(f)).read_bytes()
    yield f"{module}/VERSION", dist.version.encode()


def build(outfile: str | os.PathLike) -> Path:
    """Write the pyz to ``outfile`` (atomically) and make it executable; returns its path."""
    out = Path(outfile)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(SHEBANG)
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(_files()):
                info = zipfile.ZipInfo(name, date_time=EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m probe_pushgateway.build OUTFILE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m probe_pushgateway.build OUTFILE   (e.g. dist/bes-probe.pyz)", file=sys.stderr)
        return 3
    try:
        path = build(args[0])
    except OSError as exc:
        print(f"build: cannot write {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    print(f"built {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
