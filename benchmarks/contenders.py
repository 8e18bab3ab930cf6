"""The three BYOL implementations that bench_peers.py and bench_quality.py put side by side, each trained
the way its own documentation does, on the same encoder (ssl_toolkit's ResNet-18 with the CIFAR stem at a
given width: identical modules, so the encoder weights of every contender load into the same eval), the
same batch, the same projector/predictor sizes (4096 → 256) and the same data (the CIFAR-10 subset, uint8).

- ``ssl_toolkit``: recipes/image/byol_cifar10_cpu.yaml: the trainer's loader (uint8 batches), two views made
  batched with per-sample parameters, LARS, the fused EMA, channels_last when the recipe says so.
- ``lightly`` (PyPI lightly, its examples/pytorch/byol.py): BYOLTransform (PIL, per image) in DataLoader
  workers, BYOLProjectionHead/BYOLPredictionHead, deepcopied momentum networks with
  ``update_momentum`` and ``cosine_schedule``, NegativeCosineSimilarity, SGD lr 0.06. Views as in the
  CIFAR recipe: no blur, solarize p 0.2 on view 2, CIFAR normalization.
- ``byol_pytorch`` (PyPI byol-pytorch, its README): ``BYOL(net, image_size=32, hidden_layer=-1, ...)``
  with its default batch augmentation (one random draw per batch), Adam 3e-4, ``update_moving_average``.

Run as a worker by the benchmark scripts, in the environment that has the contender
(.venv for ssl_toolkit, .venv-bench for the peers):

    python benchmarks/contenders.py serve CONTENDER --width 0.25 --precision bf16   # reads 'run N' lines
    python benchmarks/contenders.py train CONTENDER --minutes 8 --out DIR           # DIR/encoder.pt
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import autocast, byol_training_step, sync, trainer_batches  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

CONTENDERS = ("ssl_toolkit", "lightly", "byol_pytorch")
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"
RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
HIDDEN, OUT = 4096, 256
DEVICE = torch.device("cpu")  # set by --device: where every contender trains
ARCH = "resnet18"  # set by --arch: resnet18 | resnet50, with the CIFAR stem
PEERS_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def peers_missing(python: str, contenders: list[str]) -> bool:
    """True (after saying so) when a peer is wanted but its environment is not there."""
    if any(c != "ssl_toolkit" for c in contenders) and not Path(python).exists():
        print(f"error: no peer environment at {python}; create it with `make bench-env`", file=sys.stderr)
        return True
    return False


def encoder(width: float) -> nn.Module:
    from ssl_toolkit.registry import ENCODERS

    return ENCODERS.build(ARCH, cifar_stem=True, width=width)


def _to_device(x: torch.Tensor) -> torch.Tensor:
    return x.to(DEVICE, non_blocking=True)


def _endless(loader: DataLoader):
    while True:
        yield from loader


class SslToolkit:
    """The trainer's step (harness.byol_training_step) on the trainer's loader, from the shipped recipe."""

    def __init__(self, width: float, precision: str, batch: int, workers: int, data: Path, recipe: Path = RECIPE):
        from ssl_toolkit.recipe import load_recipe

        self.recipe = load_recipe(
            recipe,
            [
                f"data.dataset.path={data}",
                f"model.encoder.width={width}",
                f"model.encoder.name={ARCH}",
                f"data.batch_size={batch}",
                f"precision={precision}",
                f"device={DEVICE}",
                f"data.pin_memory={DEVICE.type == 'cuda'}",
            ],
        )
        self._step, self.method = byol_training_step(self.recipe, DEVICE, precision, batch)
        self.batches = trainer_batches(self.recipe, DEVICE)

    def step(self, fraction: float) -> None:
        self._step(next(self.batches))

    def encoder_state(self) -> dict:
        return self.method.online.encoder.state_dict()


class PilImages(Dataset):
    """The CIFAR arrays as PIL images through a transform (what torchvision's CIFAR10 dataset does)."""

    def __init__(self, images: np.ndarray, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), 0


class Lightly:
    def __init__(self, width: float, precision: str, batch: int, workers: int, data: Path, tau_base: float = 0.99):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad
        from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform

        norm = {"mean": CIFAR_MEAN, "std": CIFAR_STD}
        transform = BYOLTransform(
            view_1_transform=BYOLView1Transform(input_size=32, gaussian_blur=0.0, normalize=norm),
            view_2_transform=BYOLView2Transform(input_size=32, gaussian_blur=0.0, normalize=norm),
        )
        images = np.load(data)["x_train"]
        loader = DataLoader(
            PilImages(images, transform),
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=DEVICE.type == "cuda",
        )
        self.batches = ([_to_device(v) for v in views] for views, _ in _endless(loader))
        self.backbone = encoder(width).to(DEVICE)
        dim = self.backbone.feature_dim
        self.projection_head = BYOLProjectionHead(dim, HIDDEN, OUT).to(DEVICE)
        self.prediction_head = BYOLPredictionHead(OUT, HIDDEN, OUT).to(DEVICE)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        params = [*self.backbone.parameters(), *self.projection_head.parameters(), *self.prediction_head.parameters()]
        self.optimizer = torch.optim.SGD(params, lr=0.06)
        self.criterion = NegativeCosineSimilarity()
        self.precision, self.tau_base = precision, tau_base

    def _online(self, x):
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def _momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def step(self, fraction: float) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        x0, x1 = next(self.batches)
        m = cosine_schedule(int(fraction * 10_000), 10_000, self.tau_base, 1)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)
        with autocast(DEVICE, self.precision):
            p0, z0 = self._online(x0), self._momentum(x0)
            p1, z1 = self._online(x1), self._momentum(x1)
            loss = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

    def encoder_state(self) -> dict:
        return self.backbone.state_dict()


class ByolPytorch:
    def __init__(self, width: float, precision: str, batch: int, workers: int, data: Path):
        from byol_pytorch import BYOL

        self.net = nn.Sequential(encoder(width), nn.Identity()).to(DEVICE)  # hidden_layer=-1: the pooled features
        self.learner = BYOL(
            self.net, image_size=32, hidden_layer=-1, projection_size=OUT, projection_hidden_size=HIDDEN
        ).to(DEVICE)
        self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=3e-4)
        images = torch.from_numpy(np.load(data)["x_train"]).permute(0, 3, 1, 2).contiguous()
        loader = DataLoader(
            images,
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=DEVICE.type == "cuda",
        )
        self.batches = (_to_device(x).float().div_(255) for x in _endless(loader))
        self.precision = precision

    def step(self, fraction: float) -> None:
        with autocast(DEVICE, self.precision):
            loss = self.learner(next(self.batches))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.learner.update_moving_average()

    def encoder_state(self) -> dict:
        return self.net[0].state_dict()


BUILDERS = {"ssl_toolkit": SslToolkit, "lightly": Lightly, "byol_pytorch": ByolPytorch}


def serve(c, batch: int) -> None:
    """Answer 'run N' lines with one JSON line: seconds for N steps. 'quit' or EOF ends."""
    steps = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        n = int(cmd[1])
        sync(DEVICE)
        start = time.perf_counter()
        for _ in range(n):
            c.step(min(steps / 10_000, 1.0))
            steps += 1
        sync(DEVICE)  # the window ends when the GPU has done its work
        print(json.dumps({"seconds": time.perf_counter() - start, "images": n * batch}), flush=True)


def train(c, minutes: float, out: Path, batch: int) -> None:
    """Train until the wall-clock budget is spent (the EMA schedule of lightly spans the budget);
    write out/encoder.pt and out/train.json."""
    start, steps = time.perf_counter(), 0
    budget = 60 * minutes
    while (elapsed := time.perf_counter() - start) < budget:
        c.step(elapsed / budget)
        steps += 1
    out.mkdir(parents=True, exist_ok=True)
    torch.save(c.encoder_state(), out / "encoder.pt")
    seconds = time.perf_counter() - start
    (out / "train.json").write_text(
        json.dumps(
            {"steps": steps, "images": steps * batch, "seconds": seconds, "images_per_s": steps * batch / seconds}
        )
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("serve", "train"))
    ap.add_argument("contender", choices=CONTENDERS)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the peers (lightly, byol_pytorch)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--arch", choices=("resnet18", "resnet50"), default="resnet18")
    args = ap.parse_args(argv)
    global DEVICE, ARCH
    DEVICE, ARCH = torch.device(args.device), args.arch
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.mode == "train" and args.contender == "ssl_toolkit":
        ap.error("ssl_toolkit trains with its own trainer: ssl-toolkit train RECIPE trainer.max_minutes=M")
    workers = 0 if args.contender == "ssl_toolkit" else args.workers
    c = BUILDERS[args.contender](args.width, args.precision, args.batch, workers, args.data)
    if args.mode == "serve":
        serve(c, args.batch)
    else:
        train(c, args.minutes, args.out, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
