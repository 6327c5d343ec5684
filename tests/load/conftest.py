"""The mixed-load test runs ``bench/load.py``'s driver, so ``bench/`` goes on the path.

The benches are scripts that import one another by file name (``from common import
...``), as Python puts a script's own folder first on the path; this gives the test the
same view of them without making ``bench/`` a package or copying the driver here.
"""

from __future__ import annotations

import sys

from tests.conftest import ROOT

BENCH = str(ROOT / "bench")
if BENCH not in sys.path:
    sys.path.append(BENCH)
