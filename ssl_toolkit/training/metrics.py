"""Run metrics: ``metrics.csv`` (one row per logged step) and TensorBoard events."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

COLUMNS = ["step", "epoch", "loss", "lr", "tau", "samples_per_s", "collapse", "skipped_files", "elapsed_s"]


class MetricsWriter:
    """Appends rows to metrics.csv; on resume, rows after the resumed step are dropped first
    (they will be produced again), so the file always reads as one continuous run.

    The columns are COLUMNS plus any scalar diagnostics the method reports (e.g. CCSL's
    ``sl_selected``), fixed by the first row written."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool):
        self.path = run_dir / "metrics.csv"
        self._kept: list[dict] = []
        self._columns: list[str] | None = None
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self._kept = [r for r in reader if int(r["step"]) <= resume_step]
                self._columns = list(reader.fieldnames or []) or None
        self._out: tuple[IO[str], csv.DictWriter] | None = None  # the open file and its writer, from the first row
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_step)

    def _open(self, row: dict) -> tuple[IO[str], csv.DictWriter]:
        columns = self._columns or COLUMNS + sorted(k for k in row if k not in COLUMNS)
        file = self.path.open("w", newline="")
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for kept in self._kept:
            writer.writerow(kept)
        return file, writer

    def write(self, row: dict) -> None:
        if self._out is None:
            self._out = self._open(row)
        file, writer = self._out
        writer.writerow({k: row.get(k, "") for k in writer.fieldnames})
        file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        if self._out is not None:
            self._out[0].close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    with (Path(run_dir) / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))
