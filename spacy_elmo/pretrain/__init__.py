"""Pretraining a biLM on raw text: the language-model objective and its vocabulary.

Nothing here imports spaCy or Thinc; the command, corpus reading, checkpoints
and distributed training build on these pieces.
"""
from .objective import BiLMLanguageModel
from .vocab import WordVocab

__all__ = ["BiLMLanguageModel", "WordVocab"]
