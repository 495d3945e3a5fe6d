"""The in-sandbox agent's modules, imported outside Docker for unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox-image" / "agent"))
