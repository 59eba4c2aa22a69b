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
    with pytest.raises(ValueError, match="is ambiguous: candidates elmo_x_options.json, elmo_y_options.json"):
        loaders.resolve_source(allen)


def test_folder_with_one_options_and_one_weights_file(reference_dir, reference_options, reference_weights):
    # the AllenNLP fixture folder: options.json + lm_weights.hdf5 among other .hdf5 files
    assert loaders.resolve_source(str(reference_dir)) == (reference_options, reference_weights)


def test_pair_and_unknown(reference_options, reference_weights):
    assert loaders.resolve_source([str(reference_options), str(reference_weights)]) == (reference_options, reference_weights)
    with pytest.raises(ValueError, match="Unknown ELMo source 'smal'.*small, medium, original, original-5.5b.*efml-<language> \\(44 languages"):
        loaders.resolve_source("smal")
    with pytest.raises(ValueError, match="Unknown ELMo source"):
        loaders.resolve_source(["only-one"])


def test_published_names_map_to_allennlp_release_addresses():
    urls = loaders.published_urls("original")
    assert urls["options.json"].endswith("2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_options.json")
    assert urls["weights.hdf5"].endswith("2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5")
    assert {"small", "medium", "original", "original-5.5b", "pubmed", "pt"} <= set(loaders.PUBLISHED)
    assert loaders.PUBLISHED_WIDTH["small"] == 256 and loaders.PUBLISHED_WIDTH["original"] == 1024
    assert loaders.published_urls("pubmed")["weights.hdf5"].endswith("_weights_PubMed_only.hdf5")


def test_the_catalogue_is_complete_and_consistent():
    keys = {"name", "language", "layout", "width", "size_mb", "options", "weights", "licence", "description"}
    rows = loaders.catalogue()
    assert len({row["name"] for row in rows}) == len(rows)
    for row in rows:
        if row["layout"] == "efml":  # ELMoForManyLangs: one zip per language in the NLPL repository
            assert set(row) == keys - {"options", "weights"} | {"zip", "nlpl_id"}, row["name"]
            assert row["zip"] == f"http://vectors.nlpl.eu/repository/11/{row['nlpl_id']}.zip"
            assert row["name"] == f"efml-{row['language']}" and row["width"] == 1024
            continue
        assert set(row) == keys, row["name"]
        assert row["options"].startswith("https://") and row["weights"].startswith("https://")
        assert row["layout"] == "bilm-tf" and row["options"].endswith(".json") and row["weights"].endswith(".hdf5")
    efml = [row for row in rows if row["layout"] == "efml"]
    assert len(efml) == 44 and len({row["nlpl_id"] for row in efml}) == 44


def test_a_published_efml_name_downloads_its_zip_once(cache, monkeypatch, tmp_path):
    import zipfile

    from .bilm.efml_model import write_efml_model

    folder = write_efml_model(tmp_path / "de.model")
    archive = tmp_path / "142.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.iterdir():
            z.write(path, f"de.model/{path.name}")
    fetched = []
    monkeypatch.setattr(loaders, "published_urls", lambda name: fetched.append(name) or {"model.zip": archive.as_uri()})
    bilm = loaders.load_source("efml-de")
    assert fetched == ["efml-de"] and (cache / "efml-de" / "model.zip").is_file()
    assert isinstance(bilm, BiLM) and bilm.config.token_ids == "efml"
    archive.unlink()  # from the cache the second time
    assert loaders.load_source("efml-de").config == bilm.config
    with pytest.raises(ValueError, match="ELMoForManyLangs model"):
        loaders.resolve_source("efml-de")


def test_models_command_lists_names_and_the_cache(cache, capsys):
    import json

    from spacy_elmo.cli import main

    (cache / "small").mkdir(parents=True)
    for name in ("options.json", "weights.hdf5"):
        (cache / "small" / name).write_text("x")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "pubmed" in out and "original-5.5b" in out
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: r["cached"] for r in rows}["small"] is True
    assert {r["name"]: r["cached"] for r in rows}["original"] is False


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
    # the SHA-256 of each file is recorded at download and checked at every later load
    import hashlib

    record = cache / "small" / "weights.hdf5.sha256"
    assert record.read_text().strip() == hashlib.sha256(reference_weights.read_bytes()).hexdigest()
    with weights.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(OSError, match=r"weights\.hdf5 has changed since it was downloaded.*Delete both files"):
        loaders.resolve_source("small")


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


@pytest.mark.parametrize(
    "options_name, weights_name",
    [
        ("options262.json", "elmo_pubmed_weights_PubMed_only.hdf5"),  # PubMed release
        ("options.json", "model.hdf5"),  # NLPL repository
        ("elmo_2x1024_options.json", "elmo_2x1024_weights.hdf5"),  # AllenNLP
    ],
)
def test_published_layouts(tmp_path, reference_options, reference_weights, options_name, weights_name):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(reference_options, folder / options_name)
    shutil.copy(reference_weights, folder / weights_name)
    (folder / "vocab.txt").write_text("the\n")
    assert loaders.resolve_source(folder) == (folder / options_name, folder / weights_name)
    assert isinstance(loaders.bilm_tf_loader_v1(str(folder))(), BiLM)


def test_zip_is_unpacked_once_and_safely(tmp_path, cache, reference_options, reference_weights):
    import zipfile

    archive = tmp_path / "223.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(reference_options, "options.json")
        z.write(reference_weights, "model.hdf5")
        z.writestr("README", "NLPL model 223")
    options, weights = loaders.resolve_source(str(archive))
    assert (options.name, weights.name) == ("options.json", "model.hdf5") and cache in options.parents
    assert loaders.resolve_source(str(archive)) == (options, weights)  # the second time from the cache
    assert isinstance(loaders.bilm_tf_loader_v1(str(archive))(), BiLM)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escape.json", "{}")
    with pytest.raises(ValueError, match="unsafe path"):
        loaders.resolve_source(str(evil))
    assert not (tmp_path / "escape.json").exists()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="not a readable zip"):
        loaders.resolve_source(str(broken))
