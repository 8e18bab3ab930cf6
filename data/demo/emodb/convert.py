"""How data/demo/emodb was made from ../shared/data/emodb (run from the repository root; kept for provenance).

Every clip is decoded and resampled to 16 kHz by ssl_toolkit's own reader (the rate the BYOL-A front end uses, and
the corpus's original rate), written as 16-bit FLAC, and metadata.csv is copied with file names, num_samples and
sample_rate updated.
"""

import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from ssl_toolkit.audio.dataset import load_audio

SRC, DST, RATE = Path("../shared/data/emodb"), Path("data/demo/emodb"), 16000


def main() -> int:
    (DST / "wav").mkdir(parents=True, exist_ok=True)
    with open(SRC / "metadata.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows, columns = list(reader), reader.fieldnames
    for row in rows:
        wave = load_audio(SRC / "wav" / row["file_name"], RATE)
        name = Path(row["file_name"]).with_suffix(".flac").name
        sf.write(DST / "wav" / name, np.clip(wave, -1, 1), RATE, subtype="PCM_16")
        row.update(file_name=name, num_samples=str(len(wave)), sample_rate=str(RATE))
    with open(DST / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} clips → {DST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
