import pytest
import torch
import torch.nn.functional as F

from s2s.model.loss import smoothed_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_and_gradient_equal_torch_cross_entropy(smoothing):
    torch.manual_seed(0)
    logits = (3 * torch.randn(12, 50, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, 50, (12,))
    weights = torch.rand(12, dtype=torch.float64)  # a non-uniform upstream gradient
    ours = smoothed_cross_entropy(logits, target, smoothing)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    reference = F.cross_entropy(logits, target, label_smoothing=smoothing, reduction="none")
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), logits)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_reference, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    torch.manual_seed(1)
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1, 0, 6, 3, 2])
    assert torch.autograd.gradcheck(lambda z: smoothed_cross_entropy(z, target, 0.2), (logits,))
