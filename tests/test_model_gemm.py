import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s2s.model.gemm import Linear, blocked_weights, linear, onednn_linear_op, runs_on_onednn

needs_onednn = pytest.mark.skipif(onednn_linear_op() is None, reason="this PyTorch build has no oneDNN linear")


def operands(rows: int = 6, bias: bool = True):
    torch.manual_seed(0)
    weight = torch.randn(40, 24)
    return torch.randn(rows, 24), weight, torch.randn(40) if bias else None


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", ["rows", "batch_steps", "strided_x", "one_row"])
def test_decoding_products_run_on_onednn_and_equal_f_linear(bias, shape):
    x, weight, b = operands(bias=bias)
    if shape == "batch_steps":   # a memory's key projection: (batch, src_len, dim)
        x = torch.randn(3, 5, 24)
    elif shape == "strided_x":  # a column slice
        x = torch.randn(6, 48)[:, :24]
    elif shape == "one_row":
        x = x[:1]
    with torch.inference_mode():
        assert runs_on_onednn(x, weight)
        got = linear(x, weight, b)
    assert got.shape == (*x.shape[:-1], 40)
    torch.testing.assert_close(got, F.linear(x, weight, b), rtol=0, atol=1e-5)


def test_training_and_the_validation_loss_compute_exactly_f_linear():
    """Outside inference mode (autograd, no_grad) it is F.linear itself: training's numbers stay the same."""
    x, weight, b = operands()
    weight.requires_grad_(True)
    assert not runs_on_onednn(x, weight)
    assert torch.equal(linear(x, weight, b), F.linear(x, weight, b))
    with torch.no_grad():
        assert not runs_on_onednn(x, weight)
        assert torch.equal(linear(x, weight, b), F.linear(x, weight, b))


def test_strided_weights_and_other_dtypes_keep_f_linear():
    """oneDNN's kernel for a column slice of a weight was 1,000x slower: it goes to F.linear."""
    x, weight, b = operands()
    wide = torch.randn(40, 48)
    with torch.inference_mode():
        assert not runs_on_onednn(x, wide[:, :24])
        assert torch.equal(linear(x, wide[:, :24], b), F.linear(x, wide[:, :24], b))
        assert not runs_on_onednn(x.double(), weight.double())
        assert torch.equal(linear(x.double(), weight.double()), F.linear(x.double(), weight.double()))


def test_linear_module_is_nn_linear_with_the_same_parameters():
    torch.manual_seed(3)
    ours = Linear(24, 40)
    torch.manual_seed(3)
    theirs = nn.Linear(24, 40)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(ours.state_dict()[k], theirs.state_dict()[k]) for k in theirs.state_dict())
    x = torch.randn(5, 24, requires_grad=True)
    ours(x).square().sum().backward()
    x_grad, x.grad = x.grad, None
    theirs(x).square().sum().backward()
    assert torch.equal(x_grad, x.grad)  # the gradients of nn.Linear, for the input and every parameter
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours.parameters(), theirs.parameters()))


@needs_onednn
def test_blocked_weights_are_made_on_entry_and_follow_a_fused_adam_step():
    """Training validates between updates: decoding after an update must use the new weights,
    although a fused Adam step does not bump the weights' version counter."""
    torch.manual_seed(0)
    model = nn.Sequential(Linear(24, 40), nn.Tanh(), Linear(40, 16))
    x = torch.randn(7, 24)

    def decoded() -> torch.Tensor:
        with blocked_weights(model), torch.inference_mode():
            assert all(layer.blocked is not None for layer in (model[0], model[2]))
            return model(x)

    torch.testing.assert_close(decoded(), model(x).detach(), rtol=0, atol=1e-5)
    assert model[0].blocked is None and model[2].blocked is None
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    model(torch.randn(3, 24)).square().sum().backward()
    optimizer.step()
    torch.testing.assert_close(decoded(), model(x).detach(), rtol=0, atol=1e-5)
    model.load_state_dict({k: torch.randn_like(v) for k, v in model.state_dict().items()})
    torch.testing.assert_close(decoded(), model(x).detach(), rtol=0, atol=1e-5)
