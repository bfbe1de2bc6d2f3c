#!/usr/bin/env bash
# Idempotent: install DIRAC 9.1.22 into the project venv (.venv) for the probe agents.
#
# `pip install DIRAC` fails on Debian 12 only because of gfal2-python (no gfal2 new enough), so DIRAC
# is installed with --no-deps and then every requirement from its own METADATA except gfal2-python,
# plus mysqlclient and opensearch-py (DIRAC's DB classes import them). M2Crypto builds with Debian's
# swig and libssl-dev (installed by scripts/setup.sh). Afterwards `pip check` lists only gfal2-python.
# dirac-jobexec ends up in .venv/bin: the agent's local back-end puts that directory on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

DIRAC_VERSION=${DIRAC_VERSION:-9.1.22}
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "install-dirac: .venv is missing; run scripts/setup.sh (make setup) first" >&2
  exit 1
fi
stamp=.venv/.dirac-$DIRAC_VERSION-$(sha1sum "$0" | cut -c1-12)
if [ -f "$stamp" ]; then
  exit 0
fi

for pkg in swig libssl-dev pkg-config libmariadb-dev; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    echo "install-dirac: Debian package $pkg is missing; run scripts/setup.sh first" >&2
    exit 1
  fi
done

log=.venv/install-dirac.log
: > "$log"
pip_install() {
  # pip's own noise (and its expected "dirac requires gfal2-python" complaint) goes to the log.
  if ! "$PY" -m pip install -q "$@" >> "$log" 2>&1; then
    echo "install-dirac: pip install $* failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

echo "install-dirac: installing DIRAC $DIRAC_VERSION into .venv (a few minutes the first time; log: $log)"
pip_install --no-deps "DIRAC==$DIRAC_VERSION"
pip_install packaging

# DIRAC's own requirements, without extras and without gfal2-python.
mapfile -t reqs < <("$PY" - <<'PYEOF'
from importlib.metadata import requires

from packaging.requirements import Requirement

for line in requires("DIRAC") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if req.name.lower().replace("_", "-") == "gfal2-python":
        continue
    print(str(req))
PYEOF
)
pip_install "${reqs[@]}" mysqlclient opensearch-py

# pip check must complain about gfal2-python only.
problems=$("$PY" -m pip check 2>&1 | grep -v '^WARNING' | grep -vi 'gfal2-python' || true)
if [ -n "$problems" ] && [ "$problems" != "No broken requirements found." ]; then
  echo "install-dirac: pip check reports more than the missing gfal2-python:" >&2
  echo "$problems" >&2
  exit 1
fi

"$PY" -c "import DIRAC, MySQLdb, opensearchpy, M2Crypto; print('install-dirac: DIRAC', DIRAC.version)"
touch "$stamp"
