"""What every benchmark records about the machine, and how it prints and writes its JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(load_before: Any) -> dict[str, Any]:
    """Cores, platform, Python, the load average before (given) and now, and the OpenMP wait policy."""
    return {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def emit(report: dict[str, Any], out: str | Path | None) -> str:
    """Print ``report`` as indented JSON and, given ``out``, write it there too (folders created)."""
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    return text
