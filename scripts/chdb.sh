#!/usr/bin/env bash
# Installs current ClickHouse (26.9, the engine inside PyPI's chdb-core wheel)
# into var/chdb-venv, for the second run of the collector tests
# (SHAOBING_CLICKHOUSE=26.9, see testkit/src/lib.rs and docs/collector.md).
# Needs python3 with venv (APT_PKGS has python3-venv). About 180 MB download,
# 560 MB installed; does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=var/chdb-venv
VERSION=26.9.0
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('chdb-core') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
echo "chdb: installing chdb-core==$VERSION (ClickHouse 26.9) into $VENV" >&2
python3 -m venv "$VENV"
# --no-deps: only the engine's own module is used (no pandas/pyarrow).
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "chdb-core==$VERSION"
"$VENV/bin/python" -c "import chdb._chdb" 
echo "chdb: installed" >&2
