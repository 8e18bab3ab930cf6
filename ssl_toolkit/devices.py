"""Where torch runs: device names (recipes, options) to ``torch.device``, and the CPU thread count."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

ACCEPTED = "auto, cpu, cuda, cuda:N (N below the number of visible GPUs) or another torch device such as mps"


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` → CUDA when available, else CPU. With ``local_rank`` (a torchrun worker), ``auto`` and
    ``cuda`` mean ``cuda:<local_rank>``; without it they stay ``cuda``. Raises ValueError naming ``name``
    and the accepted forms when the name is not a device or names a GPU this machine does not have."""
    if name == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        spec = name
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: {name!r} is not a device; accepted: {ACCEPTED}") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} was asked for but CUDA is not available; accepted here: auto or cpu")
    if device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(
            f"device: {name!r} needs {device} but only {count} CUDA device(s) are visible; accepted: {ACCEPTED}"
        )
    return device


def precision_autocast(device: torch.device, precision: str):
    """The context a forward pass runs in for ``precision``: bf16 autocast on ``device`` for ``bf16``, else none
    (fp32). Shared by evaluation, ``embed`` and their helpers."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads; the previous count is restored after,
    also when the block raises."""
    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
