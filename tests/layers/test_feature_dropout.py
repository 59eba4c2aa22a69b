"""Dropout on the ELMo features: its own rate, untouched by spaCy's [training] dropout."""
import numpy as np
import pytest
from thinc.api import Dropout, chain, set_dropout_rate

from spacy_elmo.layers.feature_dropout import FeatureDropout


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 64)).astype("float32") for n in (50, 200, 1)]


def test_identity_at_prediction():
    X = _inputs()
    Y = FeatureDropout(0.5).predict(X)
    assert all(y is x for y, x in zip(Y, X))


def test_training_drops_and_rescales_with_matching_backprop():
    X = _inputs()
    model = FeatureDropout(0.5)
    Y, backprop = model(X, is_train=True)
    kept = np.concatenate([(y != 0).ravel() for y in Y])
    assert 0.45 < kept.mean() < 0.55
    for x, y in zip(X, Y):
        np.testing.assert_allclose(y[y != 0], 2.0 * x[y != 0], rtol=1e-6)
    dX = backprop([np.ones_like(y) for y in Y])
    for y, dx in zip(Y, dX):
        np.testing.assert_array_equal(dx != 0, y != 0)


def test_spacy_training_dropout_does_not_overwrite_the_rate():
    model = chain(FeatureDropout(0.5), Dropout(0.2))
    set_dropout_rate(model, 0.1)  # what spaCy's Tok2Vec.update does with [training] dropout
    assert model.layers[0].attrs["feature_dropout"] == 0.5
    assert model.layers[1].attrs["dropout_rate"] == 0.1


def test_zero_is_the_identity_in_training_too():
    X = _inputs()
    Y, backprop = FeatureDropout(0.0)(X, is_train=True)
    assert all(y is x for y, x in zip(Y, X))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True])
def test_invalid_rates_are_clear_errors(rate):
    with pytest.raises(ValueError, match="dropout"):
        FeatureDropout(rate)
