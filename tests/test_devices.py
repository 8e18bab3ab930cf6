"""Device names → torch.device (training and evaluation share one resolver), and thread pinning."""

import pytest
import torch

from ssl_toolkit.devices import resolve_device, torch_threads
from ssl_toolkit.training.distributed import init_distributed


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices."""

    def set_count(n: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return set_count


def test_auto_and_cuda_without_a_gpu(gpus):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", local_rank=3) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=f"device: '{name}' was asked for but CUDA is not available.*auto or cpu"):
            resolve_device(name)


def test_cuda_index_comes_from_the_local_rank_when_given(gpus):
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda")  # evaluation: no index
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)  # a torchrun worker
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)  # an explicit index wins


def test_invalid_names_are_value_errors_naming_the_value_and_the_accepted_forms(gpus):
    gpus(1)
    with pytest.raises(ValueError, match=r"device: 'banana' is not a device; accepted: auto, cpu, cuda, cuda:N"):
        resolve_device("banana")
    with pytest.raises(ValueError, match=r"device: 'cuda:7' needs cuda:7 but only 1 CUDA device\(s\) .*accepted: auto"):
        resolve_device("cuda:7")
    with pytest.raises(ValueError, match=r"device: 'auto' needs cuda:2"):
        resolve_device("auto", local_rank=2)


def test_training_uses_the_resolver(monkeypatch, gpus):
    gpus(0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info, device = init_distributed("auto")
    assert device == torch.device("cpu") and not info.enabled
    with pytest.raises(ValueError, match="'banana' is not a device"):
        init_distributed("banana")


def test_torch_threads_sets_and_restores_the_count_even_on_an_error():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="boom"):
            with torch_threads(1):
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with torch_threads(2):  # already the count: nothing to change
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
