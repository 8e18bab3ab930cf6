"""A closed-form predictor under DDP (gloo, 2 CPU processes): the batch statistics are averaged over
processes, so the run equals one process with the same global batch."""

import torch

OVERRIDES = [
    "trainer.max_steps=4",
    "trainer.log_every=2",
    "views.branches=[[{name: identity}], [{name: random_scale, low: 1.0, high: 1.0}]]",
    "trainer.sync_batchnorm=true",
    "model.predictor={name: ns}",
]


def test_two_process_ddp_with_a_closed_form_predictor_equals_single_process(single_and_ddp):
    a, b = single_and_ddp(OVERRIDES)
    assert "online.predictor.weight" in a and int(a["online.predictor.num_updates"]) == 4
    # the statistics are the global batch's (without the all-reduce rank 0 would hold its half's)
    for k in ("online.predictor.sigma", "online.predictor.weight"):
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (k, (a[k] - b[k]).abs().max())
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k
