"""Write a random-weight ELMoForManyLangs model folder, in the layout EFML publishes."""
import json
from pathlib import Path
from typing import Dict, Optional

import torch

CHARS = ["<bow>", "<eow>", "<pad>", "<oov>", "<bos>", "<eos>", "\u3000"] + list("abcdefghijklmnopqrstuvwxyzäöüßTHEDS.,!'")
WORDS = ["<oov>", "<pad>", "<bos>", "<eos>", "the", "cat", "sat", "a", "Hund", "der", "die", ".", ","]
ARCHITECTURE = {
    "encoder": {"name": "elmo", "projection_dim": 8, "cell_clip": 3, "proj_clip": 3, "dim": 16, "n_layers": 2},
    "token_embedder": {"name": "cnn", "activation": "relu", "filters": [[1, 4], [2, 6], [3, 8]], "n_highway": 2,
                       "word_dim": 5, "char_dim": 7, "max_characters_per_token": 12},
    "classifier": {"name": "sampled_softmax", "n_samples": 10},
    "dropout": 0.1,
}


def states(architecture: Dict, n_chars: int, n_words: int, seed: int = 0) -> Dict[str, Dict[str, torch.Tensor]]:
    """Random ``token_embedder.pkl`` / ``encoder.pkl`` state dicts with EFML's keys and shapes."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    emb, enc = architecture["token_embedder"], architecture["encoder"]
    te = {"char_emb_layer.embedding.weight": rand(n_chars, emb["char_dim"], scale=1.0)}
    if emb["word_dim"]:
        te["word_emb_layer.embedding.weight"] = rand(n_words, emb["word_dim"], scale=1.0)
    for i, (width, n) in enumerate(emb["filters"]):
        te[f"convolutions.{i}.weight"] = rand(n, emb["char_dim"], width, scale=0.5)
        te[f"convolutions.{i}.bias"] = rand(n, scale=0.1)
    F = sum(n for _, n in emb["filters"])
    for k in range(emb["n_highway"]):
        te[f"highways._layers.{k}.weight"] = rand(2 * F, F)
        te[f"highways._layers.{k}.bias"] = rand(2 * F, scale=0.1)
    P, C = enc["projection_dim"], enc["dim"]
    te["projection.weight"] = rand(P, emb["word_dim"] + F)
    te["projection.bias"] = rand(P, scale=0.1)
    en = {}
    for layer in range(enc["n_layers"]):
        for direction in ("forward", "backward"):
            prefix = f"{direction}_layer_{layer}"
            en[f"{prefix}.input_linearity.weight"] = rand(4 * C, P)
            en[f"{prefix}.state_linearity.weight"] = rand(4 * C, P)
            en[f"{prefix}.state_linearity.bias"] = rand(4 * C)
            en[f"{prefix}.state_projection.weight"] = rand(P, C)
    return {"token_embedder.pkl": te, "encoder.pkl": en}


def write_efml_model(folder: Path, *, seed: int = 0, architecture: Optional[Dict] = None,
                     arch_in: str = "file", legacy: bool = True) -> Path:
    """A model folder: ``arch_in`` = "file" (config.json names arch.json by an absolute path
    of another machine, the file lies in the folder), or "config" (config.json holds it and names itself).
    ``legacy``: the pre-zip torch.save format of the published models."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    architecture = architecture or ARCHITECTURE
    # EFML writes "<entry>\t<id>"; U+3000 is written and stripped away when read, as in the published files
    (folder / "char.dic").write_text("".join(f"{c}\t{i}\n" for i, c in enumerate(CHARS)), encoding="utf8")
    (folder / "word.dic").write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(WORDS)), encoding="utf8")
    if arch_in == "config":
        (folder / "config.json").write_text(json.dumps({**architecture, "config_path": "config.json"}))
    else:
        (folder / "arch.json").write_text(json.dumps(architecture))
        (folder / "config.json").write_text(json.dumps({"config_path": "/users4/someone/ELMo/configs/arch.json", "seed": 1}))
    for name, state in states(architecture, len(CHARS), len(WORDS), seed).items():
        torch.save(state, folder / name, _use_new_zipfile_serialization=not legacy)
    return folder
