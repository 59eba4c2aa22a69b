"""The biLMs kept as project assets load, embed, and match their READMEs."""
import pytest
import torch

from spacy_elmo.bilm import batch_to_ids, load_bilm

from .conftest import ROOT


@pytest.mark.parametrize("name, perplexity", [("bilm-cpu-3h", "104.8"), ("bilm-cpu-3h-bf16", "81.8")])
def test_kept_bilm_loads_and_embeds(name, perplexity):
    ASSET = ROOT / "assets" / name
    bilm = load_bilm(ASSET / "options.json", ASSET / "weights.hdf5")
    assert (bilm.config.lstm_dim, bilm.config.projection_dim, bilm.config.n_filters) == (512, 128, 1024)
    with torch.inference_mode():
        out = bilm(batch_to_ids([["The", "cat", "sat", "on", "the", "mat", "."]]))
    assert out.layers.shape == (3, 1, 7, 256) and torch.isfinite(out.layers).all()
    assert (ASSET / "weights.hdf5").stat().st_size < 60 * 2**20
    assert perplexity in (ASSET / "README.md").read_text()
