"""The bf16 fast path against the exact fp32 path on the bilm-tf fixture."""
import copy

import pytest
import torch

from spacy_elmo.bilm import batch_to_ids
from spacy_elmo.bilm.precision import check_precision


@pytest.fixture(scope="module")
def sentences(reference_sentences):
    return [s.split() for group in reference_sentences for s in group]


def _layers(bilm, sentences):
    with torch.inference_mode():
        return bilm(batch_to_ids(sentences)).layers


def _weight_bytes(module):
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_bf16_stays_close_to_fp32_and_halves_the_weights(reference_bilm, sentences):
    exact = _layers(reference_bilm, sentences)
    fast = copy.deepcopy(reference_bilm).set_precision("bf16", check_device=False)
    assert fast.precision == "bf16" and reference_bilm.precision == "fp32"
    got = _layers(fast, sentences)
    assert got.dtype == torch.float32
    mask = (batch_to_ids(sentences) > 0).any(-1)
    a, b = exact[:, mask], got[:, mask]
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    # measured: max |diff| 0.015, mean cosine 0.999996, min 0.99992
    assert (a - b).abs().max() < 0.05
    assert cosine.mean() > 0.9999 and cosine.min() > 0.999
    assert _weight_bytes(fast) < 0.55 * _weight_bytes(reference_bilm)


def test_default_is_the_exact_path(reference_bilm, sentences):
    again = copy.deepcopy(reference_bilm).set_precision("fp32")
    assert torch.equal(_layers(again, sentences), _layers(reference_bilm, sentences))


def test_token_cache_is_exact_in_bf16_too(reference_bilm, sentences):
    fast = copy.deepcopy(reference_bilm).set_precision("bf16", check_device=False)
    plain = _layers(fast, sentences[:5])
    fast.set_token_cache(4)
    for _ in range(2):
        assert torch.equal(_layers(fast, sentences[:5]), plain)


def test_changing_precision_empties_the_token_cache(reference_bilm, sentences):
    bilm = copy.deepcopy(reference_bilm)
    cache = bilm.set_token_cache(4)
    _layers(bilm, sentences[:3])
    assert len(cache)
    bilm.set_precision("bf16", check_device=False)
    assert len(cache) == 0


def test_bf16_on_a_device_without_native_bf16_is_a_clear_error(reference_bilm):
    from spacy_elmo.bilm.precision import bf16_is_fast

    if bf16_is_fast(torch.device("cpu")):
        pytest.skip("this CPU has native bf16 products")
    with pytest.raises(ValueError, match="precision 'bf16' needs native bfloat16.*Use precision = 'fp32'"):
        copy.deepcopy(reference_bilm).set_precision("bf16")


@pytest.mark.parametrize("value", ["int8", "fp16", "FP32", None])
def test_unknown_precision_names_the_choices(value):
    with pytest.raises(ValueError, match="Invalid precision.*'fp32', 'bf16'"):
        check_precision(value)
