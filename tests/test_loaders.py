"""Weight sources: folders, file pairs, published names through the download cache."""
import shutil

import pytest

from spacy_elmo import loaders
from spacy_elmo.bilm import BiLM


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(loaders.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_folder_with_canonical_or_allennlp_names(tmp_path, reference_options, reference_weights):
    canonical = tmp_path / "a"
    canonical.mkdir()
    shutil.copy(reference_options, canonical / "options.json")
    shutil.copy(reference_weights, canonical / "weights.hdf5")
    assert loaders.resolve_source(str(canonical)) == (canonical / "options.json", canonical / "weights.hdf5")
    allen = tmp_path / "b"
    allen.mkdir()
    shutil.copy(reference_options, allen / "elmo_x_options.json")
    shutil.copy(reference_weights, allen / "elmo_x_weights.hdf5")
    assert loaders.resolve_source(allen) == (allen / "elmo_x_options.json", allen / "elmo_x_weights.hdf5")
    assert loaders.resolve_source(str(allen / "elmo_x_options.json"))[1] == allen / "elmo_x_weights.hdf5"
    shutil.copy(reference_options, allen / "elmo_y_options.json")
    shutil.copy(reference_weights, allen / "elmo_y_weights.hdf5")
    with pytest.raises(ValueError, match="several options/weights pairs"):
        loaders.resolve_source(allen)


def test_folder_with_one_options_and_one_weights_file(reference_dir, reference_options, reference_weights):
    # the AllenNLP fixture folder: options.json + lm_weights.hdf5 among other .hdf5 files
    assert loaders.resolve_source(str(reference_dir)) == (reference_options, reference_weights)


def test_pair_and_unknown(reference_options, reference_weights):
    assert loaders.resolve_source([str(reference_options), str(reference_weights)]) == (reference_options, reference_weights)
    with pytest.raises(ValueError, match="Unknown ELMo source 'smal'.*small, medium, original, original-5.5b"):
        loaders.resolve_source("smal")
    with pytest.raises(ValueError, match="Unknown ELMo source"):
        loaders.resolve_source(["only-one"])


def test_published_names_map_to_allennlp_release_addresses():
    urls = loaders.published_urls("original")
    assert urls["options.json"].endswith("2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_options.json")
    assert urls["weights.hdf5"].endswith("2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5")
    assert set(loaders.PUBLISHED) == set(loaders.PUBLISHED_WIDTH) == {"small", "medium", "original", "original-5.5b"}


def test_download_once_into_the_cache(cache, monkeypatch, reference_options, reference_weights):
    served = {"options.json": reference_options.as_uri(), "weights.hdf5": reference_weights.as_uri()}
    fetched = []

    def fake_urls(name):
        fetched.append(name)
        return served

    monkeypatch.setattr(loaders, "published_urls", fake_urls)
    options, weights = loaders.resolve_source("small")
    assert options == cache / "small" / "options.json" and weights.read_bytes() == reference_weights.read_bytes()
    assert not list((cache / "small").glob("*.part"))
    # second time: from the cache, nothing downloaded (a dead address proves it)
    served["weights.hdf5"] = (cache / "gone.hdf5").as_uri()
    assert loaders.resolve_source("SMALL") == (options, weights)
    bilm = loaders.bilm_tf_loader_v1("small")()
    assert isinstance(bilm, BiLM) and bilm.config.output_dim == 32


def test_offline_error_names_the_files_and_where_to_put_them(cache, monkeypatch, tmp_path):
    dead = {"options.json": (tmp_path / "nope_options.json").as_uri(), "weights.hdf5": (tmp_path / "nope.hdf5").as_uri()}
    monkeypatch.setattr(loaders, "published_urls", lambda name: dead)
    with pytest.raises(OSError) as err:
        loaders.resolve_source("medium")
    text = str(err.value)
    assert "nope_options.json" in text and str(cache / "medium" / "weights.hdf5") in text and loaders.CACHE_ENV in text
    assert not (cache / "medium" / "options.json").exists()
    with pytest.raises(OSError, match="downloads are disabled"):
        loaders.fetch_published("original", download=False)


def test_a_local_folder_named_like_a_published_model_wins(tmp_path, monkeypatch, cache, reference_options, reference_weights):
    folder = tmp_path / "small"
    folder.mkdir()
    shutil.copy(reference_options, folder / "options.json")
    shutil.copy(reference_weights, folder / "weights.hdf5")
    monkeypatch.chdir(tmp_path)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(loaders, "download_file", no_download)
    options, weights = loaders.resolve_source("small")
    assert (options.resolve(), weights.resolve()) == (folder / "options.json", folder / "weights.hdf5")
