"""The README's "Use it from Python" snippet runs as written (on a tiny run in place of the demo's) and is short."""

import re
import subprocess
import sys
from pathlib import Path

import ssl_toolkit as sslt

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "trainer.tensorboard=false",
    "trainer.progress=false",
    "trainer.hooks=[]",
    "trainer.max_steps=2",
    "model.encoder.feature_d=64",
    "model.projector.hidden_dim=32",
    "model.predictor.hidden_dim=32",
    "data.batch_size=16",
    "views.branches.0.0.n_memory=16",
    "views.branches.1.0.n_memory=16",
]


def python_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_use_it_from_python_snippet_runs(tmp_path):
    code = python_snippet()
    assert len(code.strip().splitlines()) <= 12 and '"runs/demo"' in code
    run = sslt.train(ROOT / "recipes" / "audio" / "byola_fsdd.yaml", FAST, out=tmp_path / "run", quiet=True)
    done = subprocess.run(
        [sys.executable, "-c", code.replace('"runs/demo"', repr(str(run)))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    accuracy = float(re.fullmatch(r"emotions of unseen speakers: ([\d.]+)%\n", done.stdout).group(1))
    assert 100 / 7 < accuracy <= 100.0  # above chance (7 emotions) even for a 2-step encoder
