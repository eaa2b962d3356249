"""Shared by the tests: where the source tree is, and the cdpcore import.

ctest sets PYTHONPATH and CDPCORE_LIBRARY; run by hand from the source tree, the binding
is imported from bindings/python and the library found in a build tree.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "capi" / "cdp.h"
BINDING_DIR = REPO / "bindings" / "python"

try:
    import cdpcore  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(BINDING_DIR))
    import cdpcore  # noqa: F401


def record(source, ts, **ids):
    """A touchpoint record: record("pos", 1700000000000, mobile="13957218846")."""
    return {"source": source, "ts": ts, "ids": ids}
