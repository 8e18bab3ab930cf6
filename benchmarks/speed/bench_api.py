"""Start-up costs of the library surface: ``import ssl_toolkit``, ``ssl-toolkit --help`` / ``COMMAND --help`` /
``list``, and the first ``load_encoder`` of a run (BYOL-A v1, AudioNTT2020 d=512) in a fresh process.

Each figure is the median of ``--repeats`` fresh Python processes (the first run of each is also reported: the
coldest the page cache gets here). Writes ``results/api_times.json`` and ``results/api_times.md``.

    python benchmarks/speed/bench_api.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def timed(argv: list[str], repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{argv}: {done.stderr[-2000:]}")
    return {
        "median_s": round(statistics.median(times), 3),
        "first_s": round(times[0], 3),
        "runs_s": [round(t, 3) for t in times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run(
            [
                py,
                "-m",
                "ssl_toolkit",
                "train",
                "recipes/audio/byola_fsdd.yaml",
                "--out",
                str(run),
                "trainer.max_steps=2",
                "trainer.hooks=[]",
                "trainer.tensorboard=false",
                "--quiet",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        load = (
            "import time; t = time.perf_counter(); import ssl_toolkit as s; e = s.load_encoder(%r); "
            "print(time.perf_counter() - t)"
        ) % str(run)
        cases = {
            "import ssl_toolkit": [py, "-c", "import ssl_toolkit"],
            "ssl-toolkit --help": [py, "-m", "ssl_toolkit", "--help"],
            "ssl-toolkit train --help": [py, "-m", "ssl_toolkit", "train", "--help"],
            "ssl-toolkit eval --help": [py, "-m", "ssl_toolkit", "eval", "--help"],
            "ssl-toolkit export --help": [py, "-m", "ssl_toolkit", "export", "--help"],
            "ssl-toolkit list": [py, "-m", "ssl_toolkit", "list"],
            "import + first load_encoder(run dir)": [py, "-c", load],
            "python -c pass (interpreter alone)": [py, "-c", "pass"],
        }
        results = {name: timed(argv, args.repeats) for name, argv in cases.items()}
    out = {
        "benchmark": "api_times",
        "python": sys.version.split()[0],
        "repeats": args.repeats,
        "note": "wall time of a fresh process, interpreter start included",
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api_times.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| what (fresh process) | median s | first run s |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {r['median_s']:.2f} | {r['first_s']:.2f} |" for name, r in results.items()]
    (RESULTS / "api_times.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
