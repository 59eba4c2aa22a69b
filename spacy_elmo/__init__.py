"""ELMo contextual word representations for spaCy.

The package root stays light: importing ``spacy_elmo`` loads neither spaCy nor
torch. The pure-PyTorch biLM lives in :mod:`spacy_elmo.bilm`.
"""

__version__ = "0.1.0"
