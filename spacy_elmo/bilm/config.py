"""The biLM hyper-parameters, as a dataclass that maps to and from ``options.json``.

The options file is the one bilm-tf writes and AllenNLP reads::

    {"lstm": {"dim": 4096, "projection_dim": 512, "n_layers": 2,
              "cell_clip": 3, "proj_clip": 3, "use_skip_connections": true},
     "char_cnn": {"embedding": {"dim": 16}, "filters": [[1, 32], ...],
                  "n_highway": 2, "activation": "relu",
                  "n_characters": 262, "max_characters_per_token": 50}}

Keys this model does not use (bilm-tf's training settings such as
``n_tokens_vocab`` or ``dropout``) are kept in :attr:`BiLMConfig.extra` so that
:meth:`BiLMConfig.to_options` writes them back unchanged.

ELMoForManyLangs models (``efml.py``) differ in their token encoder only, and
say so with keys a bilm-tf file never has (written only when they are not the
bilm-tf defaults, so bilm-tf options round-trip unchanged)::

    "char_cnn": {..., "ids": "efml", "n_characters": 3000}   # ids from char.dic
    "word_embedding": {"dim": 100, "n_words": 70000}         # ids from word.dic
    "lstm": {..., "forget_bias": 0.0}                        # trained in PyTorch
"""
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from ..errors import Errors

# bound on max_characters_per_token: its ids are (tokens x this) int16, allocated per batch
MAX_CHARACTERS_PER_TOKEN = 1000
# how tokens become ids: bilm-tf's UTF-8 bytes, or ELMoForManyLangs' char.dic / word.dic
TOKEN_IDS = ("bytes", "efml")
N_BYTE_IDS = 261  # bilm-tf's raw character ids 0..260 (bytes, BOS/EOS/BOW/EOW, padding)

_MISSING = object()


class OptionsError(ValueError):
    """An options.json that is missing, unreadable, incomplete or invalid."""


@dataclass(frozen=True)
class BiLMConfig:
    """Hyper-parameters of an ELMo biLM.

    char_embedding_dim: width of each character embedding.
    filters: ``(width, n_filters)`` of each character convolution.
    n_highway: number of highway layers after the convolutions.
    activation: ``"relu"`` or ``"tanh"``, applied after max-pooling.
    max_characters_per_token: characters per token, BOW/EOW included.
    n_characters: size of the character vocabulary in the options (informative:
        the weights always hold 261 raw ids plus our zero padding row).
    lstm_dim: LSTM memory cell size.
    projection_dim: LSTM state (and token representation) size; the ELMo
        vectors are ``2 * projection_dim`` wide.
    n_layers: LSTM layers per direction.
    cell_clip / proj_clip: clip values for the cell and the projected state;
        ``None`` for no clipping.
    use_skip_connections: add each LSTM layer's input to its output (not for
        the first layer).
    token_ids: ``"bytes"`` (bilm-tf: a token's UTF-8 bytes) or ``"efml"``
        (ELMoForManyLangs: code points and words looked up in its dictionaries,
        ``n_characters`` of them; see ``efml.py``).
    word_embedding_dim / n_words: a word embedding concatenated with the char
        CNN's output before the projection (ELMoForManyLangs); 0 for none.
    forget_bias: added to the forget gate at run time (TensorFlow's 1.0; 0.0 for
        biLMs trained in PyTorch, whose bias already holds it).
    extra: every other key of the options file, written back as read.
    """

    char_embedding_dim: int
    filters: Tuple[Tuple[int, int], ...]
    n_highway: int
    lstm_dim: int
    projection_dim: int
    n_layers: int
    activation: str = "relu"
    max_characters_per_token: int = 50
    n_characters: int = 262
    cell_clip: Optional[float] = None
    proj_clip: Optional[float] = None
    use_skip_connections: bool = True
    token_ids: str = "bytes"
    word_embedding_dim: int = 0
    n_words: int = 0
    forget_bias: float = 1.0
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple((int(w), int(n)) for w, n in self.filters))
        self.validate()

    @property
    def n_filters(self) -> int:
        """Width of the concatenated convolution outputs (the highway width)."""
        return sum(n for _, n in self.filters)

    @property
    def max_filter_width(self) -> int:
        """The widest character convolution."""
        return max(w for w, _ in self.filters)

    @property
    def char_rows(self) -> int:
        """Rows of the character embedding as published (our padding row 0 comes on top)."""
        return N_BYTE_IDS if self.token_ids == "bytes" else self.n_characters

    @property
    def input_width(self) -> int:
        """Ids per token in the model's input: the characters, then the word id if there is a word embedding."""
        return self.max_characters_per_token + (1 if self.word_embedding_dim else 0)

    @property
    def has_projection(self) -> bool:
        """bilm-tf projects the token vector only if its width is not ``projection_dim``; ELMoForManyLangs always does."""
        return self.token_ids != "bytes" or self.word_embedding_dim > 0 or self.n_filters != self.projection_dim

    @property
    def output_dim(self) -> int:
        """Width of every ELMo layer: ``2 * projection_dim``."""
        return 2 * self.projection_dim

    @property
    def n_output_layers(self) -> int:
        """Layers the biLM returns: the token layer plus one per LSTM layer."""
        return self.n_layers + 1

    def validate(self, source: Union[str, Path] = "<config>") -> None:
        def bad(key: str, value: Any, why: str) -> OptionsError:
            return OptionsError(Errors.E004.format(path=source, key=key, value=value, why=why))

        for key, value in (
            ("char_cnn.embedding.dim", self.char_embedding_dim),
            ("lstm.dim", self.lstm_dim),
            ("lstm.projection_dim", self.projection_dim),
            ("lstm.n_layers", self.n_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, value, "it must be a positive integer")
        if not isinstance(self.n_highway, int) or self.n_highway < 0:
            raise bad("char_cnn.n_highway", self.n_highway, "it must be an integer >= 0")
        if not self.filters:
            raise bad("char_cnn.filters", list(self.filters), "at least one [width, n_filters] pair is needed")
        if not 3 <= self.max_characters_per_token <= MAX_CHARACTERS_PER_TOKEN:
            raise bad(
                "char_cnn.max_characters_per_token",
                self.max_characters_per_token,
                f"it must be between 3 (BOW, one byte, EOW) and {MAX_CHARACTERS_PER_TOKEN} (every published model uses 50)",
            )
        for width, n in self.filters:
            if width < 1 or n < 1:
                raise bad("char_cnn.filters", [width, n], "widths and filter counts must be positive")
            if width > self.max_characters_per_token:
                raise bad(
                    "char_cnn.filters",
                    [width, n],
                    f"a filter cannot be wider than max_characters_per_token "
                    f"({self.max_characters_per_token})",
                )
        if self.activation not in ("relu", "tanh"):
            raise bad("char_cnn.activation", self.activation, "use 'relu' or 'tanh'")
        for key, value in (("lstm.cell_clip", self.cell_clip), ("lstm.proj_clip", self.proj_clip)):
            if value is not None and not value > 0:
                raise bad(key, value, "a clip value must be positive (or absent for no clipping)")
        if self.token_ids not in TOKEN_IDS:
            raise bad("char_cnn.ids", self.token_ids, f"use one of {', '.join(TOKEN_IDS)}")
        for key, value in (("word_embedding.dim", self.word_embedding_dim), ("word_embedding.n_words", self.n_words)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(key, value, "it must be an integer >= 0")
        if self.word_embedding_dim and (self.token_ids != "efml" or self.n_words < 1):
            raise bad("word_embedding", {"dim": self.word_embedding_dim, "n_words": self.n_words},
                      'a word embedding needs char_cnn.ids = "efml" (its dictionary) and n_words >= 1')
        if self.token_ids == "efml" and (not isinstance(self.n_characters, int) or self.n_characters < 1):
            raise bad("char_cnn.n_characters", self.n_characters, "an efml character dictionary has at least one entry")
        if not isinstance(self.forget_bias, (int, float)) or isinstance(self.forget_bias, bool):
            raise bad("lstm.forget_bias", self.forget_bias, "expected a number")

    @classmethod
    def from_options(cls, options: Dict[str, Any], source: Union[str, Path] = "<options>") -> "BiLMConfig":
        """Build a config from the parsed options.json (``source`` names it in errors)."""
        if not isinstance(options, dict):
            raise OptionsError(
                Errors.E004.format(path=source, key="<root>", value=type(options).__name__, why="expected a JSON object")
            )
        extra = copy.deepcopy(options)

        def take(section: str, *keys: str, default: Any = _MISSING) -> Any:
            node: Any = extra.get(section, _MISSING)
            parents = [node]
            for key in keys:
                if not isinstance(node, dict) or key not in node:
                    node = _MISSING
                    break
                node = node[key]
                parents.append(node)
            if node is _MISSING:
                if default is _MISSING:
                    raise OptionsError(Errors.E003.format(path=source, key=".".join((section,) + keys)))
                return default
            # remove the consumed key so that `extra` holds only the unknown ones
            container = extra[section]
            for key in keys[:-1]:
                container = container[key]
            del container[keys[-1]]
            return node

        kwargs = dict(
            lstm_dim=take("lstm", "dim"),
            projection_dim=take("lstm", "projection_dim"),
            n_layers=take("lstm", "n_layers"),
            cell_clip=take("lstm", "cell_clip", default=None),
            proj_clip=take("lstm", "proj_clip", default=None),
            use_skip_connections=bool(take("lstm", "use_skip_connections", default=False)),
            char_embedding_dim=take("char_cnn", "embedding", "dim"),
            filters=take("char_cnn", "filters"),
            n_highway=take("char_cnn", "n_highway", default=0),
            activation=take("char_cnn", "activation", default="tanh"),
            n_characters=take("char_cnn", "n_characters", default=262),
            max_characters_per_token=take("char_cnn", "max_characters_per_token", default=50),
            token_ids=take("char_cnn", "ids", default="bytes"),
            word_embedding_dim=take("word_embedding", "dim", default=0),
            n_words=take("word_embedding", "n_words", default=0),
            forget_bias=take("lstm", "forget_bias", default=1.0),
        )
        for section in ("lstm", "char_cnn", "word_embedding"):
            sub = extra.get(section)
            if isinstance(sub, dict):
                if sub.get("embedding") == {}:
                    del sub["embedding"]
                if not sub:
                    del extra[section]
        try:
            kwargs["filters"] = tuple((int(w), int(n)) for w, n in kwargs["filters"])  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise OptionsError(
                Errors.E004.format(
                    path=source, key="char_cnn.filters", value=kwargs["filters"], why="expected a list of [width, n_filters] pairs"
                )
            ) from None
        for key in ("cell_clip", "proj_clip", "forget_bias"):
            if kwargs[key] is not None:
                try:
                    kwargs[key] = float(kwargs[key])  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise OptionsError(
                        Errors.E004.format(path=source, key=f"lstm.{key}", value=kwargs[key], why="expected a number")
                    ) from None
        # Bypass __post_init__ so that validation errors name the options file.
        config = cls.__new__(cls)
        for name, value in kwargs.items():
            object.__setattr__(config, name, value)
        object.__setattr__(config, "extra", extra)
        config.validate(source)
        return config

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "BiLMConfig":
        """Read an options.json file."""
        path = Path(path)
        if not path.is_file():
            raise OptionsError(Errors.E001.format(path=path))
        try:
            options = json.loads(path.read_text(encoding="utf8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise OptionsError(Errors.E002.format(path=path, err=err)) from None
        return cls.from_options(options, source=path)

    def to_options(self) -> Dict[str, Any]:
        """The options.json content, unknown keys of the source included."""
        options = copy.deepcopy(self.extra)
        lstm = options.setdefault("lstm", {})
        lstm.update(
            dim=self.lstm_dim,
            projection_dim=self.projection_dim,
            n_layers=self.n_layers,
            use_skip_connections=self.use_skip_connections,
        )
        for key, value in (("cell_clip", self.cell_clip), ("proj_clip", self.proj_clip)):
            if value is not None:
                lstm[key] = int(value) if float(value).is_integer() else value
        char_cnn = options.setdefault("char_cnn", {})
        char_cnn.setdefault("embedding", {})["dim"] = self.char_embedding_dim
        char_cnn.update(
            filters=[[w, n] for w, n in self.filters],
            n_highway=self.n_highway,
            n_characters=self.n_characters,
            max_characters_per_token=self.max_characters_per_token,
            activation=self.activation,
        )
        if self.token_ids != "bytes":
            char_cnn["ids"] = self.token_ids
        if self.word_embedding_dim:
            options["word_embedding"] = {"dim": self.word_embedding_dim, "n_words": self.n_words}
        if self.forget_bias != 1.0:
            lstm["forget_bias"] = self.forget_bias
        return options

    def to_file(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_options(), indent=2) + "\n", encoding="utf8")
