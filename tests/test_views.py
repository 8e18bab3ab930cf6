import torch

from ssl_toolkit.views import BatchAugmentation, Pipeline, ViewMaker


class Recorder(BatchAugmentation):
    """Records the upstream output it was prepared with, and consumes global randomness doing so."""

    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.shift, self.seen = shift, None

    def forward(self, x, generator=None):
        return x + self.shift

    def prepare(self, context):
        torch.rand(100)
        self.seen = context.upstream(next(iter(context.batches())))


def test_prepare_order_upstream_and_rng_untouched():
    inp, b1, b2, joint = Recorder(1.0), Recorder(10.0), Recorder(100.0), Recorder()
    vm = ViewMaker(Pipeline([inp]), [Pipeline([b1]), Pipeline([b2])], Pipeline([joint]))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    vm.prepare(lambda: iter([torch.zeros(2, 3)]), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)  # preparing never shifts the run's randomness
    assert torch.equal(inp.seen, torch.zeros(2, 3))  # nothing before the input stage
    assert torch.equal(b1.seen, torch.ones(2, 3))  # branches see the input stage
    assert torch.equal(b2.seen, torch.ones(2, 3))
    assert torch.equal(joint.seen, torch.ones(2, 3))  # joint ops: the input stage only
