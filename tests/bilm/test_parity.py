"""Parity with the original TensorFlow biLM (bilm-tf), through AllenNLP's fixtures.

Protocol from ../shared/reference/allennlp-elmo/README.md.
"""
import h5py
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import BOS_TOKEN, EOS_TOKEN, batch_to_ids


def _expected_top(reference_dir, k, i):
    with h5py.File(reference_dir / f"lm_embeddings_{k}.hdf5", "r") as f:
        ds = f[str(i)][...]
    return np.concatenate([ds[0], ds[1]], axis=-1)


def test_top_layer_matches_bilm_tf_stateful_protocol(reference_bilm, reference_sentences, reference_dir):
    state = None
    worst = 0.0
    with torch.no_grad():
        for i in range(10):
            batch = [reference_sentences[k][i].split() for k in range(3)]
            out = reference_bilm(batch_to_ids(batch), state, return_state=True)
            state = out.state
            assert out.layers.shape[0] == 3 and out.layers.shape[-1] == 32
            for k in range(3):
                n = len(batch[k])
                assert int(out.mask[k].sum()) == n
                expected = _expected_top(reference_dir, k, i)
                actual = out.layers[2, k, :n].numpy()
                assert actual.shape == expected.shape
                np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=1e-5)
                worst = max(worst, float(np.abs(actual - expected).max()))
                # padding is zero
                assert not out.layers[:, k, n:].any()
    assert worst < 2e-6


def test_state_reset_reproduces_only_the_first_batch(reference_bilm, reference_sentences, reference_dir):
    """The README's check that tells a missing state carry-over from a bug."""
    with torch.no_grad():
        for i in (0, 1):
            batch = [reference_sentences[k][i].split() for k in range(3)]
            out = reference_bilm(batch_to_ids(batch))  # stateless
            assert out.state is None
            n = len(batch[0])
            diff = np.abs(out.layers[2, 0, :n].numpy() - _expected_top(reference_dir, 0, i)).max()
            if i == 0:
                assert diff < 2e-6
            else:
                assert diff > 0.1


def test_context_independent_token_representations(reference_bilm, reference_dir):
    vocab = (reference_dir / "vocab_test.txt").read_text(encoding="utf8").strip().split("\n")
    assert len(vocab) == 458
    with h5py.File(reference_dir / "elmo_token_embeddings.hdf5", "r") as f:
        expected = f["embedding"][...]
    with torch.no_grad():
        # as AllenNLP's test: 50 words per row, padded with zero tokens
        rows = [vocab[i : i + 50] for i in range(0, len(vocab), 50)]
        out = reference_bilm(batch_to_ids(rows))
        actual = torch.cat([out.layers[0, r, : len(row), :16] for r, row in enumerate(rows)]).numpy()
        direct = reference_bilm.token_representations(batch_to_ids([vocab])[0]).numpy()
        bounds = reference_bilm.token_representations(reference_bilm.boundary_ids).numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(direct, expected, atol=1e-6, rtol=1e-5)
    # layer 0 is the token representation twice
    assert torch.equal(out.layers[0, ..., :16], out.layers[0, ..., 16:])
    # <S> and </S> rows are the model's own sentence-boundary representations
    np.testing.assert_allclose(expected[vocab.index(BOS_TOKEN)], bounds[0], atol=1e-6)
    np.testing.assert_allclose(expected[vocab.index(EOS_TOKEN)], bounds[1], atol=1e-6)
    assert vocab.index(BOS_TOKEN) == 20 and vocab.index(EOS_TOKEN) == 224
