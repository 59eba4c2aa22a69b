"""The ELMo biLM in pure PyTorch (no spaCy or Thinc imports).

>>> from spacy_elmo.bilm import load_bilm, batch_to_ids
>>> bilm = load_bilm("options.json", "weights.hdf5")
>>> out = bilm(batch_to_ids([["Hello", "world", "."]]))
>>> out.layers.shape  # (n_layers + 1, batch, seq, 2 * projection_dim)
"""
from .chars import BOS_TOKEN, EOS_TOKEN, batch_to_ids, word_to_char_ids
from .config import BiLMConfig, OptionsError
from .efml import EFMLError, EFMLVocab, is_efml_folder, load_efml, save_efml
from .hdf5 import WeightFileError, load_bilm, load_weights, save_bilm, save_weights
from .lstm import LSTMState
from .model import BiLM, BiLMOutput

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "BiLM",
    "BiLMConfig",
    "BiLMOutput",
    "EFMLError",
    "EFMLVocab",
    "LSTMState",
    "OptionsError",
    "WeightFileError",
    "batch_to_ids",
    "is_efml_folder",
    "load_efml",
    "load_bilm",
    "load_weights",
    "save_bilm",
    "save_efml",
    "save_weights",
    "word_to_char_ids",
]
