"""The language-model objective on a tiny biLM and a tiny, learnable corpus."""
import math
import random

import pytest
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids, load_bilm, save_bilm
from spacy_elmo.pretrain import BiLMLanguageModel, WordVocab


def _corpus(n, seed):
    """Sentences from a small grammar: the next word is predictable from context."""
    rng = random.Random(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my friend", "the old man"], ["sees", "likes", "follows"], ["the ball", "a bird", "the river", "some food"]
    out = []
    for _ in range(n):
        s = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} ."
        out.append(s.split())
    return out


def _tiny_bilm():
    return BiLM(
        BiLMConfig(char_embedding_dim=8, filters=((1, 16), (2, 16), (3, 32)), n_highway=1, lstm_dim=64, projection_dim=32, n_layers=2, cell_clip=3.0, proj_clip=3.0)
    )


def test_vocab_specials_order_and_file(tmp_path):
    vocab = WordVocab.build([["b", "a", "b"], ["c", "b", "a"]], max_size=5)
    assert vocab.words == ["<S>", "</S>", "<UNK>", "b", "a"]
    assert vocab.ids(["a", "zzz"]) == [0, 4, 2, 1]
    vocab.to_file(tmp_path / "vocab.txt")
    assert WordVocab.from_file(tmp_path / "vocab.txt").words == vocab.words
    with pytest.raises(ValueError, match="starts with"):
        WordVocab(["a", "<S>", "</S>"])


def test_loss_falls_below_unigram_perplexity():
    torch.manual_seed(0)
    train, held_out = _corpus(400, 0), _corpus(100, 1)
    vocab = WordVocab.build(train)
    counts = vocab.unigram_counts(train)
    total = sum(counts)
    held_counts = vocab.unigram_counts(held_out)
    unigram_ppl = math.exp(-sum(c * math.log(max(counts[i], 1) / total) for i, c in enumerate(held_counts) if c) / sum(held_counts))
    model = BiLMLanguageModel(_tiny_bilm(), vocab, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    with torch.no_grad():
        start = math.exp(model(held_out).loss.item())
    model.train()
    for step in range(120):
        batch = train[(step * 32) % len(train) :][:32]
        loss = model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        end = math.exp(model(held_out).loss.item())
    print(f"held-out perplexity {start:.1f} -> {end:.2f}; unigram {unigram_ppl:.2f}")
    assert end < 0.7 * unigram_ppl < start


def test_adaptive_softmax_for_large_vocabularies():
    words = [f"w{i}" for i in range(30_000)]
    vocab = WordVocab(["<S>", "</S>", "<UNK>"] + words)
    model = BiLMLanguageModel(_tiny_bilm(), vocab)
    assert model.softmax_kind == "adaptive"
    out = model([["w1", "w29000", "w5"], ["w7"]])
    assert out.n_targets == 2 * (4 + 2) and torch.isfinite(out.loss)
    out.loss.backward()


def test_the_adaptive_loss_in_row_chunks_equals_the_whole_batch_loss(monkeypatch):
    from spacy_elmo.pretrain import objective

    monkeypatch.setattr(objective, "SOFTMAX_CHUNK_ROWS", 7)  # 50 rows: 8 pieces, the last one short
    torch.manual_seed(0)
    softmax = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 300, [20, 100], div_value=4.0)
    x = torch.randn(50, 16, requires_grad=True)
    y = torch.randint(0, 300, (50,))
    whole = softmax(x, y).loss
    (gx_whole,) = torch.autograd.grad(whole, x)
    chunked = objective.adaptive_loss(softmax, x, y)
    (gx_chunked,) = torch.autograd.grad(chunked, x)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gx_chunked, gx_whole, atol=1e-7, rtol=1e-5)


def test_trained_biLM_exports_to_the_bilm_tf_layout(tmp_path):
    torch.manual_seed(0)
    train = _corpus(64, 0)
    model = BiLMLanguageModel(_tiny_bilm(), WordVocab.build(train))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(5):
        optimizer.zero_grad()
        model(train).loss.backward()
        optimizer.step()
    bilm = model.bilm.eval()
    save_bilm(bilm, tmp_path / "options.json", tmp_path / "weights.hdf5")
    loaded = load_bilm(tmp_path / "options.json", tmp_path / "weights.hdf5")
    ids = batch_to_ids(train[:5])
    with torch.no_grad():
        assert torch.equal(bilm(ids).layers, loaded(ids).layers)
