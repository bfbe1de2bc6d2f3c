#!/usr/bin/env bash
# A real DIRAC server on loopback (docs/dirac-server.md): up | down | status [--dir DIR].
#
#   up      installs what it needs (scripts/setup.sh: MariaDB and the venv; scripts/install-dirac.sh:
#           DIRAC 9.1.22), starts the server in the background and prints `dirac-cfg: PATH` and
#           `proxy: PATH`; idempotent (a running instance is left as it is).
#   down    stops every process the instance started and drops its databases.
#   status  one line per process; exit 0 when the instance runs, 3 when it does not.
#
# DIR (default: $BES_DIRAC_SERVER_DIR or .cache/dirac-server) holds the instance: certificates,
# configuration, logs (DIR/logs), state.json.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
case "$cmd" in
  up)
    scripts/setup.sh >&2
    scripts/install-dirac.sh >&2
    ;;
  down|status)
    if [ ! -x .venv/bin/python ]; then
      echo "dirac-server: not installed (no .venv): nothing to $cmd"
      [ "$cmd" = down ] && exit 0 || exit 3
    fi
    ;;
  *)
    echo "usage: scripts/dirac-server.sh up|down|status [--dir DIR]" >&2
    exit 2
    ;;
esac
exec .venv/bin/python -m dirac_server "$@"
