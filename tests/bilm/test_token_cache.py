"""The token cache against the exact path: bit-identical vectors, LRU bound, hit counts."""
import pytest
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids
from spacy_elmo.bilm.token_cache import ENTRY_OVERHEAD, TokenCache
from spacy_elmo.bilm.token_encoder import INFERENCE_BLOCK

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["A", "dog", "."],
    ["Ünïcödé", "東京", "🙂", "x" * 80, ""],
    ["The", "mat", "was", "red", "and", "the", "cat", "slept", "."],
]


def _bilm(seed=0):
    torch.manual_seed(seed)
    config = BiLMConfig(char_embedding_dim=8, filters=((1, 4), (3, 8), (7, 16)), n_highway=2, lstm_dim=16, projection_dim=8, n_layers=2)
    return BiLM(config).eval()


def _run(bilm, batches):
    with torch.inference_mode():
        return [bilm(batch_to_ids(b)).layers for b in batches]


def test_cached_outputs_are_bit_identical_across_batches_and_calls(reference_bilm):
    batches = [SENTENCES[:2], SENTENCES[2:], SENTENCES, SENTENCES[::-1], [SENTENCES[1]]]
    reference_bilm.token_cache = None
    exact = _run(reference_bilm, batches)
    cache = reference_bilm.set_token_cache(16)
    try:
        for _ in range(2):  # cold, then warm
            for got, want in zip(_run(reference_bilm, batches), exact):
                assert torch.equal(got, want)
        assert cache.hits > 0 and cache.misses == len(cache)
        assert 0 < cache.hit_rate < 1
    finally:
        reference_bilm.token_cache = None


def test_token_vectors_do_not_depend_on_the_batch():
    """Inference encodes in fixed blocks: a token's vector is the same alone or among many."""
    bilm = _bilm()
    words = [f"w{i}" for i in range(3 * INFERENCE_BLOCK["cpu"] + 7)]
    with torch.inference_mode():
        many = bilm.token_representations(batch_to_ids([words])[0])
        for i in (0, 5, len(words) - 1):
            alone = bilm.token_representations(batch_to_ids([[words[i]]])[0])
            assert torch.equal(alone[0], many[i])


def test_inference_blocks_match_the_training_path():
    bilm = _bilm()
    ids = batch_to_ids([[f"tok{i}" for i in range(100)]])[0]
    with torch.no_grad():
        blocked = bilm.token_representations(ids)
    with torch.enable_grad():
        plain = bilm.token_representations(ids)
    torch.testing.assert_close(blocked, plain.detach(), atol=1e-6, rtol=1e-5)


def test_lru_bound_in_bytes():
    bilm = _bilm()
    dim = bilm.config.projection_dim
    per_entry = dim * 4 + 50 * 2 + ENTRY_OVERHEAD
    cache = bilm.set_token_cache(10 * per_entry / 2**20)
    words = [[[f"word{i}"]] for i in range(40)]
    _run(bilm, words)
    assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 10
    # the most recent words stay
    before = cache.hits
    _run(bilm, [words[-1]])
    assert cache.hits == before + 3  # <S>, </S> and the word itself


def test_cache_is_emptied_when_the_module_moves_or_reloads():
    bilm = _bilm()
    cache = bilm.set_token_cache(1)
    _run(bilm, [SENTENCES])
    assert len(cache) > 0
    bilm.to(torch.float32)
    assert len(cache) == 0
    _run(bilm, [SENTENCES])
    bilm.load_state_dict(_bilm(seed=1).state_dict())
    assert len(cache) == 0
    fresh = _bilm(seed=1)
    for got, want in zip(_run(bilm, [SENTENCES]), _run(fresh, [SENTENCES])):
        assert torch.equal(got, want)


def test_no_cache_with_autograd():
    bilm = _bilm()
    cache = bilm.set_token_cache(1)
    out = bilm(batch_to_ids(SENTENCES)).layers
    out.sum().backward()
    assert len(cache) == 0 and cache.hits == cache.misses == 0
    assert bilm.token_encoder.char_embedding.grad is not None


@pytest.mark.parametrize("value", [-1, "big", True])
def test_bad_sizes_are_clear_errors(value):
    with pytest.raises(ValueError, match="token_cache_mb"):
        _bilm().set_token_cache(value)


def test_zero_turns_it_off():
    bilm = _bilm()
    assert bilm.set_token_cache(0) is None and bilm.token_cache is None
    assert TokenCache(0).hit_rate == 0.0


def test_unique_rows_gives_first_occurrences_and_an_inverse():
    from spacy_elmo.bilm.token_cache import row_keys, unique_rows

    ids = torch.tensor([[3, 1, 0], [2, 2, 2], [3, 1, 0], [0, 0, 0], [2, 2, 2], [70000, 1, 0], [70000 - 65536, 1, 0]])
    unique, inverse, keys = unique_rows(ids)
    assert unique.tolist() == [[3, 1, 0], [2, 2, 2], [0, 0, 0], [70000, 1, 0], [4464, 1, 0]]
    assert torch.equal(unique[inverse], ids)
    assert keys == row_keys(unique.numpy()) and len(set(keys)) == len(keys)  # word ids past int16 do not collide
    expected, _ = torch.unique(ids, dim=0, return_inverse=True)
    assert sorted(unique.tolist()) == expected.tolist()
