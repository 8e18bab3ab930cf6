"""The benchmarks' results files: one JSON object per line, appended as each run finishes.

A run killed while it appends can leave its line cut short at the end of the file. Reading tolerates exactly that
(the last line, without its newline: a warning names it, and the run counts as not done, so it runs again);
a line that does not parse anywhere else is an error naming the file and line, never a silently dropped run.
Appending first removes such a cut-short line (its run did not finish: it runs again), so a new row is never glued
onto it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None  # type: ignore[assignment]


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a results file ([] when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            if i == len(lines):  # the last line, no newline after it: a write cut short by a kill
                print(f"{path}:{i}: ignored a line cut short ({len(line)} characters, no newline)", file=sys.stderr)
                continue
            raise ValueError(f"{path}:{i}: not a JSON line ({e}); mend or remove that line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Append rows, one line each, after removing a last line that an earlier kill cut short."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    with open(path, "r+b") as f:
        if fcntl is not None:  # processes appending at once (bench_variants --shard) take turns; released on close
            fcntl.flock(f, fcntl.LOCK_EX)
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            try:  # a whole row that only lacks its newline stays
                json.loads(data[keep:])
                f.write(b"\n")
            except ValueError:
                print(f"{path}: removed a last line cut short ({len(data) - keep} bytes)", file=sys.stderr)
                f.truncate(keep)
        f.seek(0, 2)
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
