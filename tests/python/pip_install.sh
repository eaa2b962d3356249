#!/bin/sh
# `pip install ./bindings/python` offline with Debian's Python (python3-setuptools,
# python3-wheel, python3-venv), into a fresh venv, then use the installed copy.
# Usage: pip_install.sh SOURCE_DIR LIBCDPCORE WORK_DIR
set -eu
src=$1 lib=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cp -r "$src/bindings/python" "$work/pkg"           # pip builds in the tree: keep the source clean
rm -rf "$work/pkg/build" "$work"/pkg/*.egg-info
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index "$work/pkg"
cd "$work"
CDPCORE_LIBRARY="$lib" PYTHONPATH= "$work/venv/bin/python" - <<'PY'
import os
import cdpcore
where = os.path.realpath(cdpcore.__file__)
assert "/venv/" in where, "imported %s, not the installed copy" % where
with cdpcore.Engine() as e:
    e.ingest([{"source": "pos", "ts": 1, "ids": {"mobile": "+86 139-1720-5836"}}])
    oneid = e.resolve("mobile", "13917205836")
    assert oneid, "the installed binding did not resolve"
    print("installed cdpcore %s from %s: OneID %d" % (cdpcore.__version__, where, oneid))
PY
