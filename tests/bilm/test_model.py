"""Behaviour of the biLM beyond the reference numbers: statelessness, shapes, padding."""
import json
import random

import pytest
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, LSTMState, batch_to_ids

# A correct float32 implementation differs between batch compositions only by
# BLAS rounding (kernels pick summation orders by matrix size); a leak of state or
# padding between rows shows up orders of magnitude above this.
ROUNDING = dict(atol=2e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def corpus(reference_sentences):
    return [s.split() for group in reference_sentences for s in group]


def _alone(bilm, tokens):
    with torch.no_grad():
        return bilm(batch_to_ids([tokens])).layers[:, 0]


def test_output_shapes_and_mask(reference_bilm, corpus):
    batch = corpus[:4]
    with torch.no_grad():
        out = reference_bilm(batch_to_ids(batch))
    longest = max(map(len, batch))
    assert out.layers.shape == (3, 4, longest, 32)
    assert out.layers.dtype == torch.float32
    assert out.mask.tolist() == [[t < len(s) for t in range(longest)] for s in batch]
    assert not out.layers[:, ~out.mask].any()


def test_a_sentence_is_the_same_alone_and_in_any_batch(reference_bilm, corpus):
    alone = [_alone(reference_bilm, s) for s in corpus]
    rng = random.Random(0)
    for _ in range(15):
        rows = rng.sample(range(len(corpus)), rng.randint(2, len(corpus)))
        with torch.no_grad():
            layers = reference_bilm(batch_to_ids([corpus[i] for i in rows])).layers
        for r, i in enumerate(rows):
            torch.testing.assert_close(layers[:, r, : len(corpus[i])], alone[i], **ROUNDING)


def test_neighbours_and_calls_before_do_not_leak(reference_bilm, corpus):
    """Different neighbours, much longer neighbours, extra padding, earlier calls."""
    target = corpus[5]
    reference = _alone(reference_bilm, target)
    with torch.no_grad():
        reference_bilm(batch_to_ids(corpus[10:20]))  # a previous call leaves nothing behind
        for neighbours in ([corpus[0] * 3], [["x"]], [[]], [target[::-1]]):
            batch = neighbours + [target]
            layers = reference_bilm(batch_to_ids(batch, seq_len=len(target) + 7)).layers
            torch.testing.assert_close(layers[:, -1, : len(target)], reference, **ROUNDING)
            assert not layers[:, -1, len(target) :].any()


def test_same_batch_in_another_order_is_bitwise_identical(reference_bilm, corpus):
    batch = corpus[:12]
    perm = list(range(12))
    random.Random(1).shuffle(perm)
    with torch.no_grad():
        a = reference_bilm(batch_to_ids(batch)).layers
        b = reference_bilm(batch_to_ids([batch[i] for i in perm])).layers
    for r, i in enumerate(perm):
        assert torch.equal(b[:, r], a[:, i])


def test_empty_and_one_token_sentences(reference_bilm):
    with torch.no_grad():
        empty = reference_bilm(batch_to_ids([[]]))
        nothing = reference_bilm(batch_to_ids([]))
        one = reference_bilm(batch_to_ids([["word"]]))
        mixed = reference_bilm(batch_to_ids([[], ["word"], []]))
    assert empty.layers.shape == (3, 1, 0, 32)
    assert nothing.layers.shape == (3, 0, 0, 32)
    assert one.layers.shape == (3, 1, 1, 32) and one.layers.abs().sum() > 0
    torch.testing.assert_close(mixed.layers[:, 1], one.layers[:, 0], **ROUNDING)
    assert not mixed.layers[:, 0].any() and not mixed.layers[:, 2].any()


def test_state_in_and_out(reference_bilm, corpus):
    batch = corpus[:3]
    with torch.no_grad():
        first = reference_bilm(batch_to_ids(batch), return_state=True)
        h, c = first.state
        assert h.shape == (2, 2, 3, 16) and c.shape == (2, 2, 3, 64)
        zeros = LSTMState(torch.zeros_like(h), torch.zeros_like(c))
        again = reference_bilm(batch_to_ids(batch), zeros)
        assert torch.equal(again.layers, first.layers)
        carried = reference_bilm(batch_to_ids(batch), first.state)
        assert not torch.allclose(carried.layers[1:], first.layers[1:], atol=1e-3)
        with pytest.raises(ValueError, match="state does not fit"):
            reference_bilm(batch_to_ids(batch[:2]), first.state)


@pytest.mark.parametrize("bad", [torch.zeros(2, 3), torch.zeros(1, 2, 49, dtype=torch.long), torch.zeros(1, 2, 50)])
def test_bad_char_ids_are_a_clear_error(reference_bilm, bad):
    with pytest.raises(ValueError, match="Character ids must be"):
        reference_bilm(bad)


def test_gradients_flow_for_training():
    config = BiLMConfig(
        char_embedding_dim=4, filters=((1, 4), (2, 4)), n_highway=1, lstm_dim=8, projection_dim=4, n_layers=2,
        cell_clip=3.0, proj_clip=3.0,
    )
    bilm = BiLM(config)
    out = bilm(batch_to_ids([["a", "b", "c"], ["d"]]))
    out.layers.sum().backward()
    for name, param in bilm.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_no_projection_when_filters_match_projection_dim():
    config = BiLMConfig(char_embedding_dim=4, filters=((1, 4), (2, 4)), n_highway=0, lstm_dim=8, projection_dim=8, n_layers=1)
    bilm = BiLM(config)
    assert not bilm.token_encoder.has_projection
    with torch.no_grad():
        assert bilm(batch_to_ids([["a"]])).layers.shape == (2, 1, 1, 16)
