"""The CUDA path (``pytest -m cuda``; skipped, with that reason, where torch sees no CUDA device): the training step in
bf16 and in fp16 with GradScaler, channels_last, views made on the GPU equal to the CPU ones for the same parameters,
exact resume on CUDA with deterministic algorithms, pinned-memory transfers, torch.compile, DDP with NCCL in one
process, eval / embed / HEAR on cuda, and no host synchronization inside a training step.

The data are made here (synthetic CIFAR-shaped arrays, the demo speech shipped in data/demo), so the suite runs on
a GPU machine that has the repository but not ../shared (benchmarks/gpu/README.md)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_toolkit.checkpoint import load_checkpoint
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.training.trainer import Trainer

pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
TENSORS = ROOT / "recipes" / "tensors" / "byol_gaussian.yaml"
FAST = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.hooks=[]", "device=cuda"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A CIFAR-shaped npz of random uint8 images (throughput and plumbing, not quality)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("cuda") / "images.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 512),
        x_test=rng.integers(0, 256, (128, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 128),
    )
    return path


def image_run(images: Path, out: Path, *overrides: str) -> Path:
    recipe = load_recipe(
        CIFAR,
        [
            *FAST,
            f"data.dataset.path={images}",
            "model.encoder.width=0.25",
            "data.batch_size=64",
            "trainer.max_steps=3",
            "trainer.log_every=1",
            *overrides,
        ],
    )
    return Trainer(recipe, out_dir=out, quiet=True).fit()


def losses(run: Path) -> list[float]:
    import csv

    with open(run / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_step_in_bf16_and_fp16(images, tmp_path, precision):
    run = image_run(images, tmp_path / precision, f"precision={precision}")
    assert len(losses(run)) == 3 and all(np.isfinite(losses(run)))
    scaler = load_checkpoint(run / "checkpoints" / "last.pt")["scaler"]
    assert bool(scaler) == (precision == "fp16")  # GradScaler's state is checkpointed in fp16 only


def test_channels_last_gives_the_default_layout_s_losses(images, tmp_path):
    a = losses(image_run(images, tmp_path / "a", "trainer.channels_last=false", "precision=fp32"))
    b = losses(image_run(images, tmp_path / "b", "trainer.channels_last=true", "precision=fp32"))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)  # cuDNN picks other kernels for NHWC: float rounding


def test_views_made_on_the_gpu_equal_the_cpu_views():
    """Every op of the CIFAR and BYOL-A views: the same drawn parameters give the same output on CPU and GPU
    (tolerance 1e-4 on [0, 1] images and standardized log-mels: interpolation and colour kernels differ)."""
    from ssl_toolkit.views import RandomOp, ViewMaker

    for recipe, x in (
        (CIFAR, torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)),
        (ROOT / "recipes" / "audio" / "byola_fsdd.yaml", torch.randn(16, 1, 64, 96)),
    ):
        views = ViewMaker.from_config(load_recipe(recipe, check_files=False).views)
        if x.dtype == torch.uint8:
            x = views.input(x)  # to_float
        for branch in views.branches:
            for op in branch.ops:
                if not isinstance(op, RandomOp) or type(op).__name__ == "Mixup":  # mixup draws from its memory
                    continue
                params = op.make_params(x, torch.Generator().manual_seed(0))
                cpu = op.transform(x, params)
                gpu = op.to("cuda").transform(x.cuda(), {k: v.cuda() for k, v in params.items()})
                torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4, msg=type(op).__name__)
                op.to("cpu")


def test_exact_resume_after_a_kill_with_deterministic_algorithms(tmp_path):
    """SIGKILL right after the step-10 checkpoint, then --resume auto: the weights equal an uninterrupted run's,
    bit for bit (CUBLAS_WORKSPACE_CONFIG and torch.use_deterministic_algorithms make cuBLAS reproducible)."""
    env = {**ENV, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    script = (
        "import os, signal, sys, torch\n"
        "torch.use_deterministic_algorithms(True)\n"
        "from ssl_toolkit import checkpoint\n"
        "real = checkpoint.atomic_save\n"
        "def save_then_die(obj, path):\n"
        "    out = real(obj, path)\n"
        "    if str(path).endswith('step_00000010.pt') and os.environ.get('DIE'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return out\n"
        "checkpoint.atomic_save = save_then_die\n"
        "from ssl_toolkit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["train", str(TENSORS), *FAST, "trainer.max_steps=20", "trainer.checkpoint_every=10", "--quiet"]
    killed = subprocess.run(
        [sys.executable, "-c", script, *args, "--out", str(tmp_path / "k")],
        env={**env, "DIE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    for out, extra in ((tmp_path / "k", ["--resume", "auto"]), (tmp_path / "ref", [])):
        done = subprocess.run(
            [sys.executable, "-c", script, *args, "--out", str(out), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    a, b = (load_checkpoint(p / "checkpoints" / "last.pt")["method"] for p in (tmp_path / "ref", tmp_path / "k"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pinned_memory_and_non_blocking_transfers(images):
    from ssl_toolkit.training.builders import build_loader

    recipe = load_recipe(
        CIFAR,
        [*FAST, f"data.dataset.path={images}", "data.pin_memory=true", "data.num_workers=2", "data.batch_size=64"],
    )
    _, _, loader = build_loader(recipe, torch.device("cuda"))
    x, _, _ = next(iter(loader))
    assert loader.pin_memory and x.is_pinned() and x.dtype == torch.uint8  # uint8 until the device
    y = x.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(y.cpu(), x)


def test_torch_compile_on_cuda(images, tmp_path):
    run = image_run(images, tmp_path / "c", "trainer.compile=true", "precision=bf16")
    assert all(np.isfinite(losses(run)))


def test_ddp_with_nccl_in_one_process(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "1",
            "-m",
            "ssl_toolkit",
            "train",
            str(TENSORS),
            *FAST,
            "trainer.max_steps=4",
            "--out",
            str(tmp_path / "ddp"),
            "--quiet",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["step"] == 4


def test_eval_embed_and_hear_on_cuda_equal_cpu(tmp_path):
    """The demo's audio through a tiny BYOL-A checkpoint: embed and HEAR on cuda give the CPU vectors (fp32,
    tolerance 1e-4: cuDNN convolutions round differently), and eval runs on cuda."""
    import ssl_toolkit as sslt
    import ssl_toolkit.hear as hear
    from ssl_toolkit.cli import main
    from ssl_toolkit.eval.models import write_random_checkpoint

    recipe = load_recipe(
        ROOT / "recipes" / "audio" / "byola_v1.yaml",
        [
            "data.dataset.root=data/demo/fsdd_mini",
            "model.encoder.feature_d=64",
            "model.projector.hidden_dim=32",
            "model.predictor.hidden_dim=32",
            "views.input.1.mean=-6.0",
            "views.input.1.std=4.5",
        ],
    )
    ckpt = write_random_checkpoint(recipe, tmp_path / "run" / "checkpoints" / "last.pt")
    files = sorted((ROOT / "data" / "demo" / "fsdd_mini" / "recordings").glob("*.wav"))[:6]
    cpu = sslt.load_encoder(ckpt).embed(files)
    gpu = sslt.load_encoder(ckpt, device="cuda").embed(files)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)
    model = hear.load_model(str(ckpt)).to("cuda")
    from ssl_toolkit.audio.dataset import load_audio

    wave = torch.from_numpy(np.stack([np.resize(load_audio(f, 16000), 16000) for f in files]))
    scene = hear.get_scene_embeddings(wave.cuda(), model)
    assert scene.device.type == "cuda" and scene.shape == (6, 64)
    frames, ts = hear.get_timestamp_embeddings(wave.cuda(), model)
    assert frames.device.type == "cuda" and frames.shape[:2] == ts.shape
    assert (
        main(["embed", str(ckpt), str(files[0].parent), "--out", str(tmp_path / "e"), "--device", "cuda", "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "eval",
                str(ROOT / "recipes" / "eval" / "fsdd_demo.yaml"),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(tmp_path / "ev"),
                "device=cuda",
                "linear.runs=1",
                "linear.epochs=5",
                "plots.enabled=false",
                f"cache_dir={tmp_path / 'cache'}",
                "--quiet",
            ]
        )
        == 0
    )


def test_no_host_sync_inside_a_training_step(images):
    """After two warm-up steps, three steps under torch.cuda.set_sync_debug_mode('error'): any synchronizing call
    (a .item(), a device-to-host copy, a data-dependent shape) raises."""
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "benchmarks"))
    from harness import byol_training_step

    recipe = load_recipe(CIFAR, [*FAST, f"data.dataset.path={images}", "model.encoder.width=0.25"])
    step, _ = byol_training_step(recipe, torch.device("cuda"), "bf16", 64)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device="cuda")
    for _ in range(2):
        step(x)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        start = time.perf_counter()
        for _ in range(3):
            step(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert time.perf_counter() - start > 0
