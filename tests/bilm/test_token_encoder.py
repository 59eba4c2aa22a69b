"""The fast token-encoder paths against the plain definitions they replace."""
import pytest
import torch
from torch.nn import functional as F

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids
from spacy_elmo.bilm import token_encoder
from spacy_elmo.bilm.token_encoder import CPU_BLOCK, WINDOW_CHUNK, TokenEncoder


def _config(**kw):
    base = dict(char_embedding_dim=8, filters=((1, 4), (3, 8), (7, 16)), n_highway=2, lstm_dim=16, projection_dim=8, n_layers=2)
    base.update(kw)
    return BiLMConfig(**base)


def _conv1d_reference(enc: TokenEncoder, char_ids):
    """char embedding -> Conv1d -> max over positions -> activation, the textbook way."""
    x = F.embedding(char_ids, enc.char_embedding).transpose(1, 2)
    act = torch.relu if enc.config.activation == "relu" else torch.tanh
    pooled = torch.cat([act(conv(x).max(dim=-1).values) for conv in enc.convolutions], dim=-1)
    for hw in enc.highways:
        pooled = hw(pooled)
    return torch.addmm(enc.b_proj, pooled, enc.w_proj) if enc.has_projection else pooled


def test_windowed_matmul_equals_conv1d_across_blocks():
    torch.manual_seed(0)
    for activation in ("relu", "tanh"):
        enc = TokenEncoder(_config(activation=activation)).eval()
        words = [f"w{i}" * (i % 9) for i in range(3 * CPU_BLOCK + 5)] + ["", "x" * 80, "•東京"]
        ids = batch_to_ids([words])[0]
        with torch.no_grad():
            fast, ref = enc(ids), _conv1d_reference(enc, ids)
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_batch_dedup_equals_encoding_every_position():
    torch.manual_seed(0)
    bilm = BiLM(_config()).eval()
    sentences = [["the", "cat", "the", "end"], ["the"], ["end", "cat", "cat"]]
    ids = batch_to_ids(sentences)
    with torch.no_grad():
        layers = bilm(ids).layers
        per_position = bilm.token_representations(ids)
    for r, s in enumerate(sentences):
        torch.testing.assert_close(layers[0, r, : len(s), :8], per_position[r, : len(s)], atol=1e-6, rtol=1e-5)


def test_training_path_trims_padding_with_the_same_features_and_gradients():
    """The autograd path convolves only up to each block's longest token (plus the widest
    filter): features and gradients equal the full 50-position convolution's."""
    torch.manual_seed(0)
    for activation in ("relu", "tanh"):
        enc = TokenEncoder(_config(activation=activation))
        words = [f"w{i}" * (i % 9) for i in range(3 * CPU_BLOCK + 5)] + ["", "x" * 80, "•東京", "a" * 44, "a" * 47]
        ids = torch.cat([batch_to_ids([words])[0], torch.zeros(2, 50, dtype=torch.long)])  # + padding tokens
        trimmed = enc._convolve_trimmed(ids)
        full = torch.cat([enc._convolve(ids[i : i + CPU_BLOCK]) for i in range(0, ids.shape[0], CPU_BLOCK)])
        torch.testing.assert_close(trimmed, full, atol=0, rtol=0)
        weights = torch.randn_like(full)
        grads = [torch.autograd.grad((x * weights).sum(), [enc.char_embedding, enc.convolutions[2].weight]) for x in (trimmed, full)]
        for a, b in zip(*grads):
            # the max's gradient is split among tied windows: fewer identical all-padding
            # windows share it, the same total, summed in another order
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        # and the convolutions really ran on fewer positions for short tokens
        short = batch_to_ids([["ab", "cd"]])[0]
        assert (TokenEncoder._run_starts(short) + 7).max() < 50


@pytest.mark.parametrize("onednn", [False, True])
@pytest.mark.parametrize("chunk", [WINDOW_CHUNK, 96])
def test_inference_convolves_trimmed_windows_with_the_full_convolutions_features(chunk, onednn, monkeypatch):
    """Inference on CPU convolves each token only up to its padding run, in
    fixed-size chunks of windows: the features of the plain 50-position
    convolution (bit for bit with torch's products, within float32 rounding
    with oneDNN's), and bit for bit the same whatever tokens share the call."""
    from spacy_elmo.bilm.precision import use_onednn

    monkeypatch.setenv("SPACY_ELMO_ONEDNN", "1" if onednn else "0")
    if use_onednn() != onednn:
        pytest.skip("this torch has no oneDNN linear kernels")
    monkeypatch.setattr(token_encoder, "WINDOW_CHUNK", chunk)  # 96: many chunks, the last one padded
    torch.manual_seed(0)
    for activation in ("relu", "tanh"):
        enc = TokenEncoder(_config(activation=activation)).eval()
        words = [f"w{i}" * (i % 9) for i in range(3 * CPU_BLOCK + 5)] + ["", "x" * 80, "•東京", "a" * 44, "a" * 47, "ab" * 24]
        ids = torch.cat([batch_to_ids([words])[0], torch.zeros(2, 50, dtype=torch.long)])
        with torch.no_grad():
            chunked = enc._convolve_chunked(ids)
            full = torch.cat([enc._convolve(ids[i : i + CPU_BLOCK]) for i in range(0, ids.shape[0], CPU_BLOCK)])
            if onednn:
                torch.testing.assert_close(chunked, full, atol=1e-6, rtol=1e-5)
            else:
                assert torch.equal(chunked, full)
            every = enc(ids)
            for picked in ([0], [len(words) - 1, 3, 7], list(range(0, ids.shape[0], 5))):
                assert torch.equal(enc(ids[picked]), every[picked])
