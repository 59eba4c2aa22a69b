"""ELMoForManyLangs (EFML) models: their folder layout, their token ids, their weights.

An EFML model folder, as published for 44 languages::

    config.json          training arguments; ``config_path`` names the architecture file
    <architecture>.json  {"token_embedder": {...}, "encoder": {...}} (often not shipped:
                         EFML falls back to the copy in its own package, see ARCHITECTURES)
    char.dic, word.dic   "<entry>\\t<id>" per line
    token_embedder.pkl   torch.save()d state dict: word + char embeddings, convolutions,
                         highways, projection
    encoder.pkl          torch.save()d state dict: the projected LSTM layers

Architecture: [word embedding; char CNN -> highway] -> projection -> the same
projected, clipped, skip-connected biLSTM as bilm-tf, trained in PyTorch (gate
order i, f, g, o, the forget bias inside the bias). It maps onto :class:`BiLM`
through its config (``token_ids = "efml"``, a word embedding, ``forget_bias =
0``), so everything that takes a biLM takes an EFML one.

Token ids, as EFML's own code applies them (``elmoformanylangs/frontend.py``):

* characters are Unicode code points looked up in ``char.dic`` (``<oov>`` if
  absent); words are looked up in ``word.dic`` as they are (case kept; ``<oov>``);
* a token longer than ``max_characters_per_token - 2`` code points is cut to
  that length *before* both lookups;
* each token is wrapped in the ids of ``<eow>`` (first!) and ``<bow>`` (last):
  EFML's code swaps the two names, and its models were trained so; padded
  with ``<pad>``;
* every sentence is wrapped in ``<bos>`` / ``<eos>`` tokens: characters
  ``[<eow>, <bos>, <bow>, <pad>...]``, word ``<bos>`` (``<oov>`` if absent);
* a dictionary line whose entry is whitespace (``strip()`` removes it) is read
  as U+3000, as EFML reads it.

Deviation: EFML carries the LSTM state from one batch to the next (its
encoder is stateful), so its vectors depend on what it embedded before; here
every sentence starts from a zero state, which equals EFML with its state reset
before each batch.

Nothing in the ``.pkl`` files is executed: they are read with
``torch.load(weights_only=True)``, which accepts tensors and plain containers only.
"""
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..errors import Errors
from .config import BiLMConfig, OptionsError

PathLike = Union[str, Path]

EFML_FILES = ("char.dic", "word.dic", "token_embedder.pkl", "encoder.pkl")
CHAR_MARKS = ("<bow>", "<eow>", "<pad>", "<oov>", "<bos>", "<eos>")
WORD_MARKS = ("<oov>", "<pad>")
# The architecture files EFML ships in its package (elmoformanylangs/configs/), which the
# published models' config.json name by the authors' absolute path. Every published model uses this one.
ARCHITECTURES: Dict[str, Dict[str, Any]] = {
    name: {
        "encoder": {"name": "elmo", "projection_dim": 512, "cell_clip": 3, "proj_clip": 3, "dim": 4096, "n_layers": 2},
        "token_embedder": {
            "name": "cnn", "activation": "relu",
            "filters": [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]],
            "n_highway": 2, "word_dim": 100, "char_dim": 50, "max_characters_per_token": 50,
        },
    }
    for name in ("cnn_50_100_512_4096_sample.json", "cnn_0_100_512_4096_sample.json")
}


class EFMLError(ValueError):
    """An ELMoForManyLangs folder that is incomplete, unreadable or inconsistent."""


def is_efml_folder(path: PathLike) -> bool:
    """True for a folder that holds EFML's files (``char.dic`` / ``encoder.pkl`` / ...)."""
    folder = Path(path)
    return folder.is_dir() and (folder / "encoder.pkl").is_file() and (folder / "token_embedder.pkl").is_file()


class EFMLVocab:
    """EFML's two dictionaries and its id rules (see the module doc).

    chars / words: entries in id order (``chars[i]`` has id ``i``).
    """

    def __init__(self, chars: Sequence[str], words: Sequence[str]) -> None:
        self.chars = list(chars)
        self.words = list(words)
        self.char_ids = {c: i for i, c in enumerate(self.chars)}
        self.word_ids = {w: i for i, w in enumerate(self.words)}
        for mark in CHAR_MARKS:
            if mark not in self.char_ids:
                raise EFMLError(Errors.E070.format(file="char.dic", mark=mark, marks=", ".join(CHAR_MARKS)))
        if self.words:
            for mark in WORD_MARKS:
                if mark not in self.word_ids:
                    raise EFMLError(Errors.E070.format(file="word.dic", mark=mark, marks=", ".join(WORD_MARKS)))
        c = self.char_ids
        # EFML's frontend reads (bow, eow) = (ids of "<eow>", "<bow>"): the first mark written is <eow>'s id
        self._first, self._last, self._pad, self._oov_char = c["<eow>"], c["<bow>"], c["<pad>"], c["<oov>"]
        self._oov_word = self.word_ids.get("<oov>")

    def to_dict(self) -> Dict[str, List[str]]:
        return {"chars": self.chars, "words": self.words}

    @classmethod
    def from_dict(cls, data: Dict[str, List[str]]) -> "EFMLVocab":
        return cls(data["chars"], data["words"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EFMLVocab) and self.chars == other.chars and self.words == other.words

    def token_row(self, token: str, max_chars: int, with_word: bool) -> List[int]:
        """One token's input row, ids shifted by +1 (0 is the padding token)."""
        if len(token) + 2 > max_chars:
            token = token[: max_chars - 2]
        row = [self._pad + 1] * max_chars
        row[0] = self._first + 1
        if token in ("<bos>", "<eos>"):
            row[1], row[2] = self.char_ids[token] + 1, self._last + 1
        else:
            get, oov = self.char_ids.get, self._oov_char
            for k, char in enumerate(token):
                row[k + 1] = get(char, oov) + 1
            row[len(token) + 1] = self._last + 1
        if with_word:
            row.append(self.word_ids.get(token, self._oov_word) + 1)
        return row

    def boundary_ids(self, max_chars: int, with_word: bool) -> torch.Tensor:
        """``(2, input_width)``: the rows of the ``<bos>`` and ``<eos>`` tokens."""
        return torch.tensor([self.token_row("<bos>", max_chars, with_word), self.token_row("<eos>", max_chars, with_word)])

    def batch_to_ids(self, sentences: Sequence[Sequence[str]], max_chars: int, with_word: bool,
                     seq_len: Optional[int] = None) -> torch.Tensor:
        """Right-padded ``(batch, seq, input_width)`` ids; padding tokens are rows of zeros."""
        from .chars import check_sentences, pad_token_rows

        check_sentences(sentences)
        width = max_chars + (1 if with_word else 0)
        return pad_token_rows(sentences, lambda token: self.token_row(token, max_chars, with_word), width, seq_len)


def read_dic(path: Path) -> List[str]:
    """A ``char.dic`` / ``word.dic`` file: entries in id order, read as EFML reads them."""
    if not path.is_file():
        raise EFMLError(Errors.E071.format(path=path, folder=path.parent, files=", ".join(EFML_FILES)))
    entries: Dict[int, str] = {}
    try:
        with path.open(encoding="utf8") as lines:
            for number, line in enumerate(lines, 1):
                fields = line.strip().split("\t")
                if fields == [""]:
                    continue
                if len(fields) == 1:  # the entry was whitespace, which strip() removed
                    fields.insert(0, "\u3000")
                entry, index = fields[0], int(fields[1])
                if index < 0 or index in entries:
                    raise ValueError(f"id {index} on line {number} is {'negative' if index < 0 else 'used twice'}")
                entries[index] = entry
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        raise EFMLError(Errors.E072.format(path=path, err=err)) from None
    if sorted(entries) != list(range(len(entries))):
        raise EFMLError(Errors.E072.format(path=path, err="its ids are not 0..n-1 without gaps"))
    return [entries[i] for i in range(len(entries))]


def read_architecture(folder: Path) -> Dict[str, Any]:
    """``{"token_embedder": ..., "encoder": ...}`` from config.json, the file it names, or EFML's shipped copy."""
    path = folder / "config.json"
    if not path.is_file():
        raise EFMLError(Errors.E071.format(path=path, folder=folder, files=", ".join(("config.json",) + EFML_FILES)))
    try:
        config = json.loads(path.read_text(encoding="utf8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise EFMLError(Errors.E072.format(path=path, err=err)) from None
    if isinstance(config, dict) and "token_embedder" in config and "encoder" in config:
        return config
    name = Path(str(config.get("config_path", "")) if isinstance(config, dict) else "").name
    # config_path is the authors' absolute path: only its file name means something here
    if name and (folder / name).is_file():
        try:
            return json.loads((folder / name).read_text(encoding="utf8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise EFMLError(Errors.E072.format(path=folder / name, err=err)) from None
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    raise EFMLError(Errors.E073.format(path=path, name=name or "(none)", known=", ".join(ARCHITECTURES)))


def efml_config(architecture: Dict[str, Any], vocab: EFMLVocab, source: PathLike) -> BiLMConfig:
    """The :class:`BiLMConfig` of an EFML architecture (as options.json keys, so errors name them)."""
    try:
        embedder, encoder = architecture["token_embedder"], architecture["encoder"]
        if str(embedder.get("name", "cnn")).lower() != "cnn" or str(encoder.get("name", "elmo")).lower() != "elmo":
            raise EFMLError(Errors.E074.format(path=source, what=f"token_embedder {embedder.get('name')!r} / encoder {encoder.get('name')!r}"))
        if not embedder.get("char_dim"):
            raise EFMLError(Errors.E074.format(path=source, what="a token embedder without characters (char_dim 0)"))
        options = {
            "lstm": {
                "dim": encoder["dim"], "projection_dim": encoder["projection_dim"], "n_layers": encoder["n_layers"],
                # EFML clips only for a non-zero value, and always adds the skip connections
                "cell_clip": encoder.get("cell_clip") or None, "proj_clip": encoder.get("proj_clip") or None,
                "use_skip_connections": True, "forget_bias": 0.0,
            },
            "char_cnn": {
                "embedding": {"dim": embedder["char_dim"]}, "filters": embedder["filters"],
                "n_highway": embedder.get("n_highway", 0), "activation": embedder.get("activation", "relu"),
                "max_characters_per_token": embedder["max_characters_per_token"],
                "n_characters": len(vocab.chars), "ids": "efml",
            },
        }
    except (KeyError, TypeError, AttributeError) as err:
        raise EFMLError(Errors.E074.format(path=source, what=f"an architecture without {err}")) from None
    for key in ("cell_clip", "proj_clip"):
        if options["lstm"][key] is None:
            del options["lstm"][key]
    if embedder.get("word_dim"):
        if not vocab.words:
            raise EFMLError(Errors.E071.format(path=Path(source) / "word.dic", folder=source, files=", ".join(EFML_FILES)))
        options["word_embedding"] = {"dim": embedder["word_dim"], "n_words": len(vocab.words)}
    try:
        return BiLMConfig.from_options(options, source=source)
    except OptionsError as err:
        raise EFMLError(str(err)) from None


def read_state(path: Path) -> Dict[str, torch.Tensor]:
    """A ``torch.save``d state dict, read without executing anything (old and zip formats)."""
    if not path.is_file():
        raise EFMLError(Errors.E071.format(path=path, folder=path.parent, files=", ".join(EFML_FILES)))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an UnpicklingError for anything but tensors; EOFError, RuntimeError for damage
        raise EFMLError(Errors.E075.format(path=path, err=str(err).splitlines()[0] if str(err) else type(err).__name__)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EFMLError(Errors.E075.format(path=path, err="it is not a state dict of tensors"))
    return state


def _swap_gates(t: torch.Tensor, cell: int) -> torch.Tensor:
    """Gate blocks on dim 0: PyTorch's (i, f, g, o) <-> this model's (i, j=g, f, o) (its own inverse)."""
    i, f, g, o = t.split(cell, dim=0)
    return torch.cat([i, g, f, o], dim=0)


TE, EN = "token_embedder.pkl", "encoder.pkl"
Tensors = List[Tuple[str, str, Callable[[], torch.Tensor], Callable[[torch.Tensor], None]]]


def _tensors(model) -> Tensors:
    """``(file, key, get, put)`` for every tensor of an EFML-layout biLM: ``get()`` gives the
    model's tensor in EFML's form, ``put(t)`` copies EFML's form into the model (under no_grad).
    The one mapping that :func:`load_efml` and :func:`save_efml` both use."""
    config, enc = model.config, model.token_encoder
    C, F = config.lstm_dim, config.n_filters

    def same(file: str, key: str, tensor: torch.Tensor):
        return (file, key, lambda: tensor, tensor.copy_)

    def transposed(file: str, key: str, tensor: torch.Tensor):
        return (file, key, lambda: tensor.t(), lambda t: tensor.copy_(t.t()))

    out: Tensors = [same(TE, "char_emb_layer.embedding.weight", enc.char_embedding[1:])]
    if enc.word_embedding is not None:
        out.append(same(TE, "word_emb_layer.embedding.weight", enc.word_embedding[1:]))
    for i, conv in enumerate(enc.convolutions):
        out += [same(TE, f"convolutions.{i}.weight", conv.weight), same(TE, f"convolutions.{i}.bias", conv.bias)]
    for k, hw in enumerate(enc.highways):
        # EFML: y = g * x + (1 - g) * relu(A x), g = sigmoid(B x), [A; B] in one weight;
        # here the gate is 1 - g = sigmoid(-B x): the carry weights are -B
        def put_weight(t: torch.Tensor, hw=hw) -> None:
            hw.w_transform.copy_(t[:F].t())
            hw.w_carry.copy_(-t[F:].t())

        def put_bias(t: torch.Tensor, hw=hw) -> None:
            hw.b_transform.copy_(t[:F])
            hw.b_carry.copy_(-t[F:])

        out += [(TE, f"highways._layers.{k}.weight", lambda hw=hw: torch.cat([hw.w_transform.t(), -hw.w_carry.t()]), put_weight),
                (TE, f"highways._layers.{k}.bias", lambda hw=hw: torch.cat([hw.b_transform, -hw.b_carry]), put_bias)]
    out += [transposed(TE, "projection.weight", enc.w_proj), same(TE, "projection.bias", enc.b_proj)]
    for index, layer in enumerate(model.lstm.layers):
        for d, direction in enumerate(("forward", "backward")):
            prefix = f"{direction}_layer_{index}"
            for key, tensor in ((f"{prefix}.input_linearity.weight", layer.w_input[d]), (f"{prefix}.state_linearity.weight", layer.w_hidden[d])):
                out.append((EN, key, lambda w=tensor: _swap_gates(w.t(), C), lambda t, w=tensor: w.copy_(_swap_gates(t, C).t())))
            bias = layer.bias[d]
            out += [(EN, f"{prefix}.state_linearity.bias", lambda b=bias: _swap_gates(b, C), lambda t, b=bias: b.copy_(_swap_gates(t, C))),
                    transposed(EN, f"{prefix}.state_projection.weight", layer.w_proj[d])]
    return out


def load_efml(folder: PathLike):
    """Build a :class:`~.model.BiLM` from an EFML model folder (eval mode, nothing unpickled)."""
    from .model import BiLM

    folder = Path(folder)
    if not folder.is_dir():
        raise EFMLError(Errors.E071.format(path=folder, folder=folder, files=", ".join(("config.json",) + EFML_FILES)))
    architecture = read_architecture(folder)
    word_dim = (architecture.get("token_embedder") or {}).get("word_dim") if isinstance(architecture, dict) else 0
    vocab = EFMLVocab(read_dic(folder / "char.dic"), read_dic(folder / "word.dic") if word_dim else [])
    config = efml_config(architecture, vocab, folder)
    states = {name: read_state(folder / name) for name in (TE, EN)}
    model = BiLM(config, vocab=vocab)
    with torch.no_grad():
        for file, key, get, put in _tensors(model):
            tensor, shape = states[file].get(key), tuple(get().shape)
            if tensor is None:
                raise EFMLError(Errors.E076.format(path=folder / file, key=key, what="is missing"))
            if tuple(tensor.shape) != shape:
                raise EFMLError(Errors.E076.format(path=folder / file, key=key, what=f"has shape {tuple(tensor.shape)}, the architecture implies {shape}"))
            if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
                raise EFMLError(Errors.E076.format(path=folder / file, key=key, what="holds NaN, infinite or non-float values"))
            put(tensor.float())
    return model.eval()


def efml_architecture(config: BiLMConfig) -> Dict[str, Any]:
    """The ``{"token_embedder", "encoder"}`` architecture JSON of an EFML-layout biLM."""
    return {
        "encoder": {"name": "elmo", "projection_dim": config.projection_dim, "dim": config.lstm_dim, "n_layers": config.n_layers,
                    "cell_clip": config.cell_clip or 0, "proj_clip": config.proj_clip or 0},
        "token_embedder": {"name": "cnn", "activation": config.activation, "filters": [list(f) for f in config.filters],
                           "n_highway": config.n_highway, "word_dim": config.word_embedding_dim,
                           "char_dim": config.char_embedding_dim, "max_characters_per_token": config.max_characters_per_token},
        # EFML's code reads it (training only; the value of its shipped architecture)
        "dropout": 0.1,
    }


def save_efml(model, folder: PathLike) -> Path:
    """Write an EFML-layout biLM (one :func:`load_efml` read, or continued pretraining made) as an EFML folder.

    ``config.json`` holds the architecture and names itself as ``config_path``, so
    ELMoForManyLangs' own ``Embedder`` reads the folder too. Returns the folder.
    """
    from ..atomic_write import atomic_path

    config, vocab = model.config, model.vocab
    if config.token_ids != "efml" or vocab is None:
        raise EFMLError(f"save_efml: this biLM (char_cnn.ids = {config.token_ids!r}) is not an ELMoForManyLangs one; use save_bilm.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    states: Dict[str, Dict[str, torch.Tensor]] = {TE: {}, EN: {}}
    for file, key, get, _ in _tensors(model):
        states[file][key] = get().detach().float().cpu().contiguous().clone()
    for name, state in states.items():
        with atomic_path(folder / name) as tmp:
            torch.save(state, tmp)
    for name, entries in (("char.dic", vocab.chars), ("word.dic", vocab.words)):
        if name == "word.dic" and not entries:
            continue
        with atomic_path(folder / name) as tmp:
            tmp.write_text("".join(f"{entry}\t{i}\n" for i, entry in enumerate(entries)), encoding="utf8")
    with atomic_path(folder / "config.json") as tmp:
        tmp.write_text(json.dumps({**efml_architecture(config), "config_path": "config.json"}, indent=2) + "\n", encoding="utf8")
    return folder
