"""SimSiam on the engine: no target copies, SimSiam's gradients exactly, and the recipe's sizes."""

import torch
import torch.nn.functional as F
from torch import nn

import ssl_toolkit.components  # noqa: F401
from ssl_toolkit.engine.heads import MLPHead
from ssl_toolkit.recipe import EmaConfig
from ssl_toolkit.registry import METHODS


def _simsiam():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
    enc.feature_dim = 16
    return METHODS.build(
        "simsiam",
        encoder=enc,
        projector=MLPHead(16, 32, 8, num_layers=3, last_norm=True),
        predictor=MLPHead(8, 4, 8),
        ema=EmaConfig(),
    )


def test_no_target_network_and_the_target_is_the_detached_online_projection():
    m = _simsiam()
    assert len(m.targets) == 0
    out = m([torch.randn(6, 8), torch.randn(6, 8)])
    zt, z = out["target_projections"], out["projections"]
    assert torch.equal(zt[(0, 1)], z[1].detach()) and not zt[(0, 1)].requires_grad
    assert m.update_targets(0, 10) == EmaConfig().tau_base  # nothing to update


def test_loss_is_one_plus_simsiam_and_gradients_equal_simsiams():
    m = _simsiam()
    v = [torch.randn(6, 8), torch.randn(6, 8)]
    out = m(v)
    p, z = out["predictions"], out["projections"]
    D = lambda a, b: -F.cosine_similarity(a, b.detach(), dim=-1).mean()  # noqa: E731
    simsiam = 0.5 * D(p[0], z[1]) + 0.5 * D(p[1], z[0])
    torch.testing.assert_close(out["loss"], 1 + simsiam)
    grads = torch.autograd.grad(out["loss"], list(m.parameters()), retain_graph=True)
    ref = torch.autograd.grad(simsiam, list(m.parameters()))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b)


def test_stop_gradient_the_target_branch_gets_no_gradient():
    # the target side's projections are detached: only the predictor path carries gradient
    m = _simsiam()
    out = m([torch.randn(6, 8), torch.randn(6, 8)])
    z = out["projections"]
    g = torch.autograd.grad(out["loss"], [z[0], z[1]], retain_graph=True)
    # d loss / d z_v flows only through p_v = h(z_v), never through z_v as a target
    p = out["predictions"]
    g_through_p = torch.autograd.grad(out["loss"], [p[0], p[1]], retain_graph=True)
    for gz, gp, v in zip(g, g_through_p, range(2)):
        jvp = torch.autograd.grad(p[v], z[v], grad_outputs=gp, retain_graph=True)[0]
        torch.testing.assert_close(gz, jvp)


def test_recipes_build_the_official_heads_and_keep_the_predictor_lr_constant():
    """The shipped SimSiam recipes: the projector's output BN has no parameters (official
    ``BatchNorm1d(dim, affine=False)``; the Linear before it has no bias) and the predictor's parameters, only
    they, sit in the optimizer groups the schedule leaves at the base lr (the official ``--fix-pred-lr``)."""
    from pathlib import Path

    from ssl_toolkit.engine.build import build_method
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.optim import build_optimizer

    root = Path(__file__).resolve().parents[2]
    for path in ("recipes/variants/image/simsiam_cifar10_cpu.yaml", "recipes/variants/audio/simsiam_fsdd.yaml"):
        recipe = load_recipe(root / path, check_files=False)
        method = build_method(recipe)
        out_norm, last_linear = method.online.projector[-1], method.online.projector[-2]
        assert isinstance(out_norm, nn.BatchNorm1d) and not out_norm.affine and last_linear.bias is None
        optimizer, _ = build_optimizer(recipe.optimizer, method, global_batch=recipe.data.batch_size)
        constant = {id(p) for g in optimizer.param_groups if not g["scheduled"] for p in g["params"]}
        assert constant == {id(p) for p in method.online.predictor.parameters()}, path
