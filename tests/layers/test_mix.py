import numpy as np
import pytest
from thinc.api import NumpyOps

from spacy_elmo.layers.mix import LayerMix


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, n, 4)).astype("float32") for n in (2, 5, 1)]


@pytest.mark.parametrize("mix, width", [("scalar", 4), ("average", 4), ("top", 4), ("all", 12)])
def test_shapes_and_values(mix, width):
    X = _inputs()
    model = LayerMix(mix, n_layers=3, dim=4)
    model.initialize()
    Y, _ = model(X, is_train=False)
    assert [y.shape for y in Y] == [(2, width), (5, width), (1, width)]
    expected = {
        "scalar": [x.mean(0) for x in X],
        "average": [x.mean(0) for x in X],
        "top": [x[-1] for x in X],
        "all": [np.concatenate(list(x), axis=-1) for x in X],
    }[mix]
    for y, e in zip(Y, expected):
        np.testing.assert_allclose(y, e, rtol=1e-6, atol=1e-6)


def test_untrained_scalar_mix_is_equal_weights_and_unit_scale():
    model = LayerMix("scalar", n_layers=3, dim=4)
    model.initialize()
    assert np.array_equal(model.get_param("weights"), np.zeros(3, dtype="float32"))
    assert np.array_equal(model.get_param("gamma"), np.ones(1, dtype="float32"))


def _loss_and_grads(model, X, dY):
    Y, backprop = model(X, is_train=True)
    loss = sum(float((y * d).sum()) for y, d in zip(Y, dY))
    return loss, backprop(dY)


@pytest.mark.parametrize("mix", ["scalar", "average", "top", "all"])
def test_gradients_match_finite_differences(mix):
    X = [x.astype("float64") for x in _inputs(1)]
    model = LayerMix(mix, n_layers=3, dim=4)
    model.ops = NumpyOps()
    model.initialize()
    if mix == "scalar":
        model.set_param("weights", np.array([0.3, -0.2, 0.5], dtype="float32"))
        model.set_param("gamma", np.array([1.7], dtype="float32"))
    Y, _ = model(X, is_train=False)
    dY = [np.random.default_rng(2).normal(size=y.shape) for y in Y]
    _, dX = _loss_and_grads(model, X, dY)
    eps = 1e-2  # outputs are float32; the mix is linear in its inputs, so a large step is exact
    # inputs
    for k in range(len(X)):
        for index in [(0, 0, 0), (2, X[k].shape[1] - 1, 3), (1, 0, 2)]:
            plus = [x.copy() for x in X]
            minus = [x.copy() for x in X]
            plus[k][index] += eps
            minus[k][index] -= eps
            f = lambda inp: sum(float((y * d).sum()) for y, d in zip(model(inp, is_train=False)[0], dY))
            numeric = (f(plus) - f(minus)) / (2 * eps)
            assert dX[k][index] == pytest.approx(numeric, rel=1e-3, abs=1e-3)
    eps = 1e-3
    if mix == "scalar":
        for name in ("weights", "gamma"):
            grad = model.get_grad(name).copy()
            param = model.get_param(name).astype("float64")
            for i in range(param.shape[0]):
                p = param.copy()
                p[i] += eps
                model.set_param(name, p)
                up = sum(float((y * d).sum()) for y, d in zip(model(X, is_train=False)[0], dY))
                p[i] -= 2 * eps
                model.set_param(name, p)
                down = sum(float((y * d).sum()) for y, d in zip(model(X, is_train=False)[0], dY))
                model.set_param(name, param)
                assert grad[i] == pytest.approx((up - down) / (2 * eps), rel=1e-2, abs=1e-3)


def test_invalid_mix():
    with pytest.raises(ValueError, match="Invalid mix 'max'"):
        LayerMix("max")


def test_mix_l2_adds_l2_times_weights_to_the_gradient():
    X = _inputs(3)
    dY = [np.random.default_rng(4).normal(size=(x.shape[1], 4)).astype("float32") for x in X]
    weights = np.array([0.3, -0.2, 0.5], dtype="float32")
    grads = {}
    for l2 in (0.0, 0.25):
        model = LayerMix("scalar", n_layers=3, dim=4, l2=l2)
        model.initialize()
        model.set_param("weights", weights)
        _loss_and_grads(model, X, dY)
        grads[l2] = model.get_grad("weights").copy()
    np.testing.assert_allclose(grads[0.25] - grads[0.0], 0.25 * weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("l2", [-0.1, "a", True])
def test_invalid_mix_l2(l2):
    with pytest.raises(ValueError, match="mix_l2"):
        LayerMix("scalar", l2=l2)


@pytest.mark.parametrize("mix", ["average", "top", "all"])
def test_mix_l2_needs_the_scalar_mix(mix):
    with pytest.raises(ValueError, match=f"mix_l2.*mix = '{mix}'"):
        LayerMix(mix, l2=0.001)
    assert LayerMix(mix, l2=0.0).attrs["l2"] == 0.0
