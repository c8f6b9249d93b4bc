"""The tests test this checkout: its ``core`` and ``plugins`` come first on the path, for the
tests themselves and for every ``virtbridge`` they start, whatever else is installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SOURCES = [str(ROOT / "core"), str(ROOT / "plugins"), str(ROOT)]
sys.path[:0] = [path for path in _SOURCES if path not in sys.path[:3]]
os.environ["PYTHONPATH"] = os.pathsep.join(_SOURCES)
