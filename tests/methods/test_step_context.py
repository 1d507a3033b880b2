"""StepContext.optimizer_step: non-finite gradient values are zeroed for the step and counted in
the stat `<name>/nonfinite_grads`."""
import numpy as np
import torch

from semistylegan.methods import StepContext


def _context(params):
    opt = torch.optim.SGD(params, lr=1.0)
    return StepContext(np.random.default_rng(0), torch.device("cpu"), {"net": opt}, step=0), opt


def test_nonfinite_gradient_values_are_zeroed_and_counted():
    a = torch.nn.Parameter(torch.zeros(6))
    b = torch.nn.Parameter(torch.zeros(2, 2))
    unused = torch.nn.Parameter(torch.zeros(3))  # no gradient at all: counts nothing
    ctx, _ = _context([a, b, unused])
    poison = torch.tensor([float("nan"), 1.0, float("inf"), 2.0, -float("inf"), 3.0])
    a.register_hook(lambda g: g * 0 + poison)  # three non-finite values, three finite ones
    loss = a.sum() + (b * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum()
    ctx.optimizer_step("net", loss, [a, b, unused])
    assert ctx.stats == {"net/nonfinite_grads": 3.0}
    # SGD with lr 1: the finite gradient values moved the weights, the non-finite ones nothing
    torch.testing.assert_close(a.detach(), torch.tensor([0.0, -1.0, 0.0, -2.0, 0.0, -3.0]))
    torch.testing.assert_close(b.detach(), -torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(unused.detach(), torch.zeros(3))
    assert a.grad is None and b.grad is None  # cleared after the step


def test_finite_gradients_count_zero():
    a = torch.nn.Parameter(torch.ones(4))
    ctx, _ = _context([a])
    ctx.optimizer_step("net", (a * 2).sum(), [a])
    assert ctx.stats == {"net/nonfinite_grads": 0.0}
    torch.testing.assert_close(a.detach(), torch.full((4,), -1.0))
