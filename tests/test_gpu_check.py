"""benchmarks/gpu/check.py, the one-command GPU check (issue 36): without CUDA it measures nothing and says so (exit
0); its stages fit 5 minutes; a failing stage is recorded and the summary names every stage's outcome."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu" / "check.py"


def _check():
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_cuda_nothing_is_measured(tmp_path):
    import torch

    done = subprocess.run(
        [sys.executable, str(CHECK), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    if not torch.cuda.is_available():
        assert done.stdout.strip() == "no CUDA device: nothing measured"
        assert not any((tmp_path / "out").iterdir())


def test_stages_fit_five_minutes_and_failures_are_results(tmp_path):
    check = _check()
    assert list(check.BUDGETS) == list(check.STAGES) and sum(check.BUDGETS.values()) <= 300

    def broken(out, args):
        raise RuntimeError("CUDA error: out of memory\nmore")

    check.STAGES["loader"] = broken
    check.run_stage("loader", tmp_path, None)
    r = json.loads((tmp_path / "gpu_loader.json").read_text())
    assert r["status"] == "failed" and r["error"] == "RuntimeError: CUDA error: out of memory" and r["result"] is None
    check.write(
        tmp_path,
        "env",
        {"status": "ok", "seconds": 3.2, "result": {"gpu": "H100", "bf16_matmul_tflops": 790}, "error": None},
    )
    text = check.summary(tmp_path)
    assert "- env: ok in 3.2 s (budget 20 s)" in text and '"bf16_matmul_tflops": 790' in text
    assert "- loader: failed" in text and "- peers: not run" in text


def test_smoke_runs_the_stages_code_paths_on_the_cpu(tmp_path):
    """--smoke: the stages of the one GPU call at toy sizes on the CPU (peers is checked by hand: ~1.5 min here)."""
    done = subprocess.run(
        [
            sys.executable,
            str(CHECK),
            "--smoke",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "work"),
            "--stages",
            "env",
            "cuda_tests",
            "utilization",
            "loader",
            "byola",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    for name in ("env", "cuda_tests", "utilization", "loader", "byola"):
        r = json.loads((tmp_path / "out" / f"gpu_{name}.json").read_text())
        assert r["status"] == "ok", (name, r)
    util = json.loads((tmp_path / "out" / "gpu_utilization.json").read_text())["result"]
    assert util["tflop_per_step"] > 0 and util["utilization"] is not None
    assert len(list((tmp_path / "out").iterdir())) <= 8  # what the device tool brings back
