"""Reading an evaluation's results dictionary: the systems it compares, and file-safe task names
(shared by the report and the plots)."""

from __future__ import annotations

import re


def systems_of(results: dict) -> list[tuple[str, str, dict]]:
    """(key, column label, task entries) for the model and each baseline, in table order."""
    first = "random" if results.get("checkpoint_info", {}).get("kind") == "random" else "model"
    label = "random init (evaluated)" if first == "random" else "model"
    out = [(first, label, results["tasks"])]
    for name, b in results.get("baselines", {}).items():
        out.append((name, b.get("label", name), b["tasks"]))
    return out


def safe_name(text: str) -> str:
    """``text`` as a file name: runs of other characters than letters, digits, ``_.-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "task"
