import json

import pytest

from spacy_elmo.bilm import BiLMConfig, OptionsError

PUBLISHED_SMALL = {
    "lstm": {"use_skip_connections": True, "projection_dim": 128, "cell_clip": 3, "proj_clip": 3, "dim": 1024, "n_layers": 2},
    "char_cnn": {
        "activation": "relu",
        "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
        "n_highway": 1,
        "embedding": {"dim": 16},
        "n_characters": 262,
        "max_characters_per_token": 50,
    },
}


def test_reference_options(reference_options):
    config = BiLMConfig.from_file(reference_options)
    assert config.filters == ((1, 4), (2, 8), (3, 16), (4, 32), (5, 64))
    assert config.n_filters == 124 and config.output_dim == 32 and config.n_output_layers == 3
    assert (config.lstm_dim, config.projection_dim, config.n_layers) == (64, 16, 2)
    assert config.cell_clip == 3.0 and config.proj_clip == 3.0 and config.use_skip_connections
    assert config.activation == "relu" and config.char_embedding_dim == 4
    assert config.to_options() == json.loads(reference_options.read_text())


def test_published_layout_and_unknown_keys_round_trip():
    options = json.loads(json.dumps(PUBLISHED_SMALL))
    options["lstm"]["dropout"] = 0.1
    options["n_tokens_vocab"] = 793471
    config = BiLMConfig.from_options(options)
    assert config.n_filters == 2048 and config.output_dim == 256
    assert config.extra == {"lstm": {"dropout": 0.1}, "n_tokens_vocab": 793471}
    assert config.to_options() == options


def test_file_round_trip(tmp_path):
    config = BiLMConfig.from_options(PUBLISHED_SMALL)
    config.to_file(tmp_path / "options.json")
    assert BiLMConfig.from_file(tmp_path / "options.json") == config


@pytest.mark.parametrize(
    "path, key",
    [
        (("lstm", "dim"), "lstm.dim"),
        (("lstm", "projection_dim"), "lstm.projection_dim"),
        (("lstm", "n_layers"), "lstm.n_layers"),
        (("char_cnn", "filters"), "char_cnn.filters"),
        (("char_cnn", "embedding"), "char_cnn.embedding.dim"),
        (("char_cnn",), "char_cnn.embedding.dim"),
    ],
)
def test_missing_key_names_file_and_key(tmp_path, path, key):
    options = json.loads(json.dumps(PUBLISHED_SMALL))
    node = options
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    file = tmp_path / "options.json"
    file.write_text(json.dumps(options))
    with pytest.raises(OptionsError, match=f"lack the key '{key}'") as err:
        BiLMConfig.from_file(file)
    assert str(file) in str(err.value)


@pytest.mark.parametrize(
    "section, key, value, words",
    [
        ("char_cnn", "activation", "gelu", "'relu' or 'tanh'"),
        ("lstm", "dim", 0, "positive integer"),
        ("lstm", "projection_dim", "128", "positive integer"),
        ("char_cnn", "filters", [[1]], "pairs"),
        ("char_cnn", "filters", [[60, 3]], "wider"),
        ("lstm", "cell_clip", -1, "positive"),
        ("lstm", "proj_clip", "three", "a number"),
        ("char_cnn", "max_characters_per_token", 2, "between 3"),
        ("char_cnn", "max_characters_per_token", 100_000_000, "and 1000"),
    ],
)
def test_invalid_values(tmp_path, section, key, value, words):
    options = json.loads(json.dumps(PUBLISHED_SMALL))
    options[section][key] = value
    file = tmp_path / "options.json"
    file.write_text(json.dumps(options))
    with pytest.raises(OptionsError, match=words) as err:
        BiLMConfig.from_file(file)
    assert str(file) in str(err.value) and key in str(err.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(OptionsError, match="not found"):
        BiLMConfig.from_file(tmp_path / "nope.json")
    bad = tmp_path / "options.json"
    bad.write_text("{not json")
    with pytest.raises(OptionsError, match="not valid JSON"):
        BiLMConfig.from_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(OptionsError, match="JSON object"):
        BiLMConfig.from_file(bad)
