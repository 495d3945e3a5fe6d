"""The egress proxy's policy module, imported outside Docker for unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "egress-image"))
