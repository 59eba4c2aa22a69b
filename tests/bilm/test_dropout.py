"""The language model's dropout: F.dropout's distribution with a cheaper mask."""
import torch

from spacy_elmo.bilm.dropout import dropout


def test_keeps_one_minus_p_and_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    y = dropout(x, 0.3)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.02


def test_gradient_goes_through_the_same_mask():
    torch.manual_seed(0)
    x = torch.randn(50, 20, requires_grad=True)
    y = dropout(x, 0.5)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() * 2.0)


def test_zero_rate_is_the_identity():
    x = torch.randn(3, 4)
    assert dropout(x, 0.0) is x
