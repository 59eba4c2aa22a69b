"""Reading and writing the AllenNLP / bilm-tf weight layout."""
import shutil

import h5py
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, WeightFileError, batch_to_ids, load_bilm, load_weights, save_bilm
from spacy_elmo.bilm.hdf5 import expected_shapes


def _datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_round_trip_is_bit_exact(tmp_path, reference_options, reference_weights):
    bilm = load_bilm(reference_options, reference_weights)
    save_bilm(bilm, tmp_path / "options.json", tmp_path / "weights.hdf5")
    original, written = _datasets(reference_weights), _datasets(tmp_path / "weights.hdf5")
    assert sorted(original) == sorted(written)
    for name, array in original.items():
        assert written[name].dtype == array.dtype == np.float32, name
        assert written[name].shape == array.shape, name
        assert np.array_equal(written[name], array), name
    again = load_bilm(tmp_path / "options.json", tmp_path / "weights.hdf5")
    for (name, a), (_, b) in zip(bilm.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob("*.tmp"))


def test_layout_covers_every_parameter(reference_options, reference_weights):
    config = BiLMConfig.from_file(reference_options)
    shapes = expected_shapes(config)
    assert shapes == {name: array.shape for name, array in _datasets(reference_weights).items()}
    assert sum(int(np.prod(s)) for s in shapes.values()) + config.char_embedding_dim == sum(
        p.numel() for p in BiLM(config).parameters()
    )


def test_padding_row_is_zero_and_forget_bias_is_not_folded(reference_bilm, reference_weights):
    raw = _datasets(reference_weights)
    emb = reference_bilm.token_encoder.char_embedding
    assert not emb[0].any() and torch.equal(emb[1:], torch.from_numpy(raw["char_embed"]))
    bias = reference_bilm.lstm.layers[0].bias[0]
    assert torch.equal(bias, torch.from_numpy(raw["RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/B"]))


def test_a_fresh_model_saved_and_loaded_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    config = BiLMConfig(
        char_embedding_dim=8, filters=((1, 8), (3, 16)), n_highway=2, lstm_dim=32, projection_dim=8, n_layers=3,
        cell_clip=3.0, proj_clip=3.0, activation="tanh",
    )
    bilm = BiLM(config).eval()
    save_bilm(bilm, tmp_path / "o.json", tmp_path / "w.hdf5")
    again = load_bilm(tmp_path / "o.json", tmp_path / "w.hdf5")
    ids = batch_to_ids([["Some", "words", "."], ["More"]])
    with torch.no_grad():
        assert torch.equal(bilm(ids).layers, again(ids).layers)


def test_missing_file(tmp_path, reference_options):
    with pytest.raises(WeightFileError, match="not found") as err:
        load_bilm(reference_options, tmp_path / "weights.hdf5")
    assert "weights.hdf5" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all", b"\x80\x02}q\x00."])
def test_not_hdf5(tmp_path, reference_options, content):
    path = tmp_path / "weights.hdf5"
    path.write_bytes(content)
    with pytest.raises(WeightFileError, match="is not an HDF5 file") as err:
        load_bilm(reference_options, path)
    assert str(path) in str(err.value)


def test_truncated_download(tmp_path, reference_options, reference_weights):
    path = tmp_path / "weights.hdf5"
    path.write_bytes(reference_weights.read_bytes()[:100_000])
    with pytest.raises(WeightFileError, match="HDF5") as err:
        load_bilm(reference_options, path)
    assert str(path) in str(err.value)


def test_missing_dataset(tmp_path, reference_options, reference_weights):
    path = tmp_path / "weights.hdf5"
    shutil.copy(reference_weights, path)
    with h5py.File(path, "a") as f:
        del f["RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0"]
    with pytest.raises(WeightFileError, match="no dataset 'RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0'") as err:
        load_bilm(reference_options, path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("damage, words", [("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("string", "not numbers")])
def test_damaged_values_are_errors(tmp_path, reference_options, reference_weights, damage, words):
    path = tmp_path / "weights.hdf5"
    shutil.copy(reference_weights, path)
    name = "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/B"
    with h5py.File(path, "a") as f:
        data = f[name][...]
        if damage == "string":
            del f[name]
            f.create_dataset(name, data=np.array(["x"] * data.shape[0], dtype="S1"))
        else:
            data[3] = np.nan if damage == "nan" else np.inf
            f[name][...] = data
    with pytest.raises(WeightFileError, match=words) as err:
        load_bilm(reference_options, path)
    assert str(path) in str(err.value) and name in str(err.value)


def test_options_from_another_model(tmp_path, reference_options, reference_weights):
    options = BiLMConfig.from_file(reference_options).to_options()
    options["lstm"]["dim"] = 128
    (tmp_path / "options.json").write_text(__import__("json").dumps(options))
    with pytest.raises(WeightFileError, match=r"has shape \(32, 256\).*imply \(32, 512\)") as err:
        load_bilm(tmp_path / "options.json", reference_weights)
    assert "lm_weights.hdf5" in str(err.value) and "different models" in str(err.value)
    options["lstm"]["n_layers"] = 3
    options["lstm"]["dim"] = 64
    (tmp_path / "options.json").write_text(__import__("json").dumps(options))
    with pytest.raises(WeightFileError, match="no dataset 'RNN_0/RNN/MultiRNNCell/Cell2"):
        load_bilm(tmp_path / "options.json", reference_weights)


def test_extra_datasets_warn_and_load(tmp_path, reference_options, reference_weights):
    path = tmp_path / "weights.hdf5"
    shutil.copy(reference_weights, path)
    with h5py.File(path, "a") as f:
        f.create_dataset("softmax/W", data=np.zeros((3, 3), dtype=np.float32))
    bilm = BiLM(BiLMConfig.from_file(reference_options))
    with pytest.warns(UserWarning, match="softmax/W"):
        load_weights(bilm, path)


def test_never_unpickles(tmp_path, reference_options):
    """A pickle bomb under the weights name is rejected as not-HDF5, never executed."""
    import pickle

    class Bomb:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "weights.hdf5"
    path.write_bytes(pickle.dumps(Bomb()))
    with pytest.raises(WeightFileError, match="not an HDF5 file"):
        load_bilm(reference_options, path)
