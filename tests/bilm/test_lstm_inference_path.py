"""The LSTM's inference path: the first layer's input products per token type against per position."""
import torch

from spacy_elmo.bilm import BiLMConfig
from spacy_elmo.bilm.lstm import StackedBiLSTM


def test_products_per_type_equal_products_per_position():
    torch.manual_seed(0)
    config = BiLMConfig(char_embedding_dim=4, filters=((1, 4), (2, 4)), n_highway=1, lstm_dim=12, projection_dim=6,
                        n_layers=2, cell_clip=0.5, proj_clip=0.4)
    lstm = StackedBiLSTM(config).eval()
    vectors = torch.randn(5, 6)  # five token types
    lengths = torch.tensor([3, 7, 1, 5])  # unsorted, with padding
    ids = torch.randint(0, 5, (4, 7))
    ids[torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    inputs = vectors[ids] * (torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    state = lstm.zero_state(4, inputs)
    state = type(state)(torch.randn_like(state.h) * 0.1, torch.randn_like(state.c) * 0.1)
    with torch.no_grad():
        plain, plain_state = lstm(inputs, lengths, state)
        typed, typed_state = lstm(inputs, lengths, state, types=(vectors, ids))
    torch.testing.assert_close(typed, plain, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(typed_state.h, plain_state.h, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(typed_state.c, plain_state.c, atol=1e-6, rtol=1e-6)
    for row, n in enumerate(lengths.tolist()):  # zero at padding
        assert not typed[:, row, n:].any()
    with torch.no_grad():
        # the per-type products are what the first layer read (other vectors, other outputs)
        other, _ = lstm(inputs, lengths, state, types=(vectors + 1, ids))
    assert not torch.allclose(other, plain)
    # with autograd, the per-position path runs whatever the caller passes
    trained, _ = lstm(inputs.requires_grad_(), lengths, state, types=(vectors + 1, ids))
    torch.testing.assert_close(trained.detach(), plain, atol=1e-6, rtol=1e-5)
