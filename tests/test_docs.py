"""The docs site builds in strict mode (a broken link, a missing page or a docstring reference that no longer
exists fails), and the tutorial runs as shipped on a tiny freshly trained encoder."""

import re
import subprocess
import sys
from pathlib import Path

from test_readme import FAST  # the tiny training run of the README snippet's test

import ssl_toolkit as sslt

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in (
        "index.html",
        "evaluation/index.html",
        "reference/index.html",
        "tutorials/embed-and-classify/index.html",
        "results/demo_training.png",
    ):
        assert (tmp_path / "site" / page).is_file(), page
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "load_encoder" in reference and "FinetuneConfig" in reference  # docstrings made it into the page


def test_tutorial_runs_as_shipped(tmp_path):
    run = sslt.train(ROOT / "recipes" / "audio" / "byola_fsdd.yaml", FAST, out=tmp_path / "run", quiet=True)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docs" / "tutorials" / "embed_and_classify.py"),
            "--run",
            str(run),
            "--out",
            str(tmp_path / "out"),
            "--limit",
            "120",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = float(re.search(r"emotion of unseen speakers: ([\d.]+)%", done.stdout).group(1))
    assert 0.0 <= accuracy <= 100.0
    assert (tmp_path / "out" / "embed_and_classify.png").stat().st_size > 10_000
