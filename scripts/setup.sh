#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root) or an already prepared one:
# Debian packages, a running MariaDB, the project venv (.venv) and DIRAC's own schema files.
set -euo pipefail
cd "$(dirname "$0")/.."

# bes-report: WeasyPrint's Pango, HarfBuzz and a font (PDF); its tests render in Chromium, read the PDF with poppler.
APT_PKGS=(mariadb-server mariadb-client prometheus prometheus-pushgateway prometheus-alertmanager
          python3-venv python3-dev build-essential pkg-config libmariadb-dev swig libssl-dev openssl
          prometheus-sql-exporter victoria-metrics
          libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core chromium poppler-utils)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d keeps the packages' own daemons (default ports) from starting.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

scripts/mariadb-up.sh

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test,report]"
  touch "$stamp"
fi

.venv/bin/python -m dirac_db.schema fetch
