import torch

from ssl_toolkit.engine.losses import regression_loss


def test_regression_loss_hand_computed():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    z = torch.tensor([[0.0, 2.0], [1.0, 1.0], [-3.0, -4.0]])
    # cos = 0, 1, -1  →  2 − 2cos = 2, 0, 4 ; equals ‖p̄ − z̄‖²
    expected = torch.tensor([2.0, 0.0, 4.0])
    assert torch.allclose(regression_loss(p, z), expected, atol=1e-6)
    pn, zn = torch.nn.functional.normalize(p, dim=1), torch.nn.functional.normalize(z, dim=1)
    assert torch.allclose(regression_loss(p, z), ((pn - zn) ** 2).sum(1), atol=1e-6)


def test_regression_loss_stops_gradient_into_z():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    regression_loss(p, z).mean().backward()
    assert p.grad is not None and z.grad is None
