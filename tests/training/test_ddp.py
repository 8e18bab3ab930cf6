"""DDP launched by torchrun (gloo, 2 CPU processes) equals one process with the same global batch."""

import torch

DETERMINISTIC_VIEWS = "views.branches=[[{name: identity}], [{name: random_scale, low: 1.0, high: 1.0}]]"


def test_two_process_ddp_equals_single_process(single_and_ddp, tmp_path):
    a, b = single_and_ddp(
        ["trainer.max_steps=6", "trainer.log_every=3", DETERMINISTIC_VIEWS, "trainer.sync_batchnorm=true"]
    )
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
    # only rank 0 wrote: one metrics file, one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints").iterdir()) == ["last.pt"]
