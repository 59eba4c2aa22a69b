"""The ELMo biLM: character ids -> every layer's contextual vectors.

Stateless by default: each call starts every sequence from a zero LSTM state,
so a token's vectors never depend on the other sequences of the batch or on
earlier calls. The state is an explicit optional input and output only so that
the stateful protocol of the reference implementations can be replayed.
"""
import json
from typing import TYPE_CHECKING, Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..errors import Errors
from .chars import batch_to_ids, sentence_boundary_ids
from .config import BiLMConfig
from .lstm import LSTMState, StackedBiLSTM
from .precision import FLOAT_FREED, apply_precision, check_float_kept, check_precision, drop_onednn, precision_of, repack_int8
from .precision import int8_state, pack_int8_state
from .precision import check_device as check_precision_device
from .token_cache import TokenCache, unique_rows
from .token_encoder import TokenEncoder

if TYPE_CHECKING:
    from .efml import EFMLVocab


# the pickled state's key for the int8 weights' values (BiLM.__getstate__)
_INT8_VALUES = "_int8_values"


class BiLMOutput(NamedTuple):
    """layers: ``(n_layers + 1, batch, seq, 2 * projection_dim)``; layer 0 is the
    token representation twice (``[t; t]``), layers 1.. are ``[forward; backward]``
    LSTM outputs; zero at padding. mask: ``(batch, seq)`` bool, True at tokens.
    state: the final LSTM state, when asked for (else ``None``).
    """

    layers: Tensor
    mask: Tensor
    state: Optional[LSTMState]


class BiLM(nn.Module):
    """Character CNN token encoder + stacked bidirectional projected LSTM.

    vocab: the dictionaries of a biLM whose ``config.token_ids`` is ``"efml"``
    (:class:`~.efml.EFMLVocab`); ``None`` for bilm-tf's byte ids.
    """

    def __init__(self, config: BiLMConfig, vocab: Optional["EFMLVocab"] = None) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.token_encoder = TokenEncoder(config)
        self.lstm = StackedBiLSTM(config)
        max_chars = config.max_characters_per_token
        if config.token_ids == "bytes":
            boundaries = sentence_boundary_ids(max_chars)
        else:
            if vocab is None or len(vocab.chars) != config.n_characters or len(vocab.words) != config.n_words:
                sizes = "none" if vocab is None else f"{len(vocab.chars)} characters, {len(vocab.words)} words"
                raise ValueError(Errors.E078.format(chars=config.n_characters, words=config.n_words, sizes=sizes))
            boundaries = vocab.boundary_ids(max_chars, bool(config.word_embedding_dim))
        self.register_buffer("boundary_ids", boundaries, persistent=False)
        self.token_cache: Optional[TokenCache] = None

    def spec(self) -> Dict[str, str]:
        """What rebuilds this biLM without its weights (:meth:`from_spec`): its options as
        JSON and, for an ELMoForManyLangs biLM, its dictionaries. Saved pipelines and
        pretraining checkpoints store it next to the state dict."""
        out = {"options": json.dumps(self.config.to_options())}
        if self.vocab is not None:
            out["vocab"] = json.dumps(self.vocab.to_dict())
        return out

    @classmethod
    def from_spec(cls, spec: Dict[str, str], source: str = "<saved biLM>") -> "BiLM":
        """A biLM (fresh weights) from :meth:`spec`'s output; ``source`` names it in errors."""
        from .efml import EFMLVocab

        config = BiLMConfig.from_options(json.loads(spec["options"]), source=source)
        vocab = EFMLVocab.from_dict(json.loads(spec["vocab"])) if "vocab" in spec else None
        return cls(config, vocab=vocab)

    def batch_to_ids(self, sentences: Sequence[Sequence[str]], seq_len: Optional[int] = None) -> Tensor:
        """This biLM's input for token lists: ``(batch, seq, config.input_width)`` long, right-padded.

        bilm-tf's byte ids (:func:`~.chars.batch_to_ids`), or an EFML model's
        dictionary ids (:meth:`~.efml.EFMLVocab.batch_to_ids`).
        """
        cfg = self.config
        if self.vocab is None:
            return batch_to_ids(sentences, cfg.max_characters_per_token, seq_len=seq_len)
        return self.vocab.batch_to_ids(sentences, cfg.max_characters_per_token, bool(cfg.word_embedding_dim), seq_len)

    def set_trainable(self, part: str) -> "BiLM":
        """Which parameters learn: ``"none"``, ``"top"`` (the top LSTM layer),
        ``"lstm"`` (all LSTM layers) or ``"all"``; the rest get ``requires_grad = False``."""
        self.requires_grad_(part == "all")
        if part == "lstm":
            self.lstm.requires_grad_(True)
        elif part == "top":
            self.lstm.layers[-1].requires_grad_(True)
        return self

    def set_token_cache(self, max_mb: float) -> Optional[TokenCache]:
        """Keep up to ``max_mb`` MiB of token vectors across calls (0: no cache).

        Used only without autograd; exact (see :mod:`.token_cache`). Emptied by
        ``.to()`` and ``load_state_dict``; if you change the encoder's weights
        in place (training), call ``token_cache.clear()``. Returns the cache.
        """
        if isinstance(max_mb, bool) or not isinstance(max_mb, (int, float)) or not max_mb >= 0:
            raise ValueError(Errors.E024.format(value=max_mb))
        self.token_cache = TokenCache(int(max_mb * 2**20)) if max_mb > 0 else None
        return self.token_cache

    @property
    def precision(self) -> str:
        """``"fp32"`` (exact), ``"bf16"`` (weight matrices in bfloat16) or ``"int8"``
        (dynamic int8 products, CPU): see :mod:`.precision`."""
        return precision_of(self)

    def set_precision(self, precision: str, *, check_device: bool = True, keep_float: bool = True) -> "BiLM":
        """Store the weight matrices in ``precision`` (in place; for inference). ``"bf16"``
        halves the weights' memory; going back to ``"fp32"`` does not restore the
        dropped bits: keep an fp32 copy (or reload) for the exact path.
        ``"int8"`` (CPU only) keeps the float32 weights beside their int8 form:
        ``set_precision("fp32")`` is exact again. ``keep_float=False`` frees them
        (the LSTM's weights then take under a third of the memory; the outputs are
        the same): the biLM can then only run; saving it, moving it or changing
        its precision is a clear error.
        ``check_device``: refuse bf16 on a device without native bf16 products
        (where it would be far slower than fp32), int8 off the CPU."""
        if getattr(self, FLOAT_FREED, False):
            if precision == "int8" and not keep_float:
                return self
            check_float_kept(self, f"set it to {precision!r}" + ("" if precision != "int8" else " keeping float32 weights"))
        if precision != self.precision or (precision == "int8" and not keep_float):
            if check_device:
                device = next(self.parameters()).device
                check_precision_device(check_precision(precision), device)
            apply_precision(self, precision, keep_float=keep_float)
            if self.token_cache is not None:
                self.token_cache.clear()
        return self

    def _apply(self, fn, *args, **kwargs):  # .to(), .half(), .cuda(): cached vectors are stale
        check_float_kept(self, "move or convert it (.to(), .float(), .cuda())")
        if getattr(self, "token_cache", None) is not None:
            self.token_cache.clear()
        out = super()._apply(fn, *args, **kwargs)
        repack_int8(self)  # int8 weights are packed from the float ones: pack the moved ones
        return out

    def __getstate__(self):
        """Pickling (spawned workers) and ``copy.deepcopy``: without the oneDNN packs, and with
        the int8 weights' values, packed again by :meth:`__setstate__` for the same kernels
        (``Parameter.__deepcopy__`` drops the packed forms, and unpickled ones are packed for
        the default kernels: the products would change in float32 rounding)."""
        drop_onednn(self)
        state = dict(super().__getstate__())
        if precision_of(self) == "int8":
            state[_INT8_VALUES] = int8_state(self)
        return state

    def __setstate__(self, state):
        values = state.pop(_INT8_VALUES, None)
        super().__setstate__(state)
        if values is not None:
            pack_int8_state(self, values)

    def state_dict(self, *args, **kwargs):
        check_float_kept(self, "save it (state_dict)")
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        check_float_kept(self, "load weights into it (load_state_dict)")
        if self.token_cache is not None:
            self.token_cache.clear()
        out = super().load_state_dict(*args, **kwargs)
        repack_int8(self)  # new weights: new int8 packs
        return out

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def token_representations(self, char_ids: Tensor) -> Tensor:
        """Context-independent vectors: ``(..., max_chars)`` -> ``(..., projection_dim)``."""
        return self.token_encoder(char_ids)

    def forward(
        self,
        char_ids: Tensor,
        state: Optional[LSTMState] = None,
        *,
        return_state: bool = False,
    ) -> BiLMOutput:
        """Run the biLM on right-padded sentences *without* boundary tokens.

        char_ids: ``(batch, seq, input_width)`` long, from :meth:`batch_to_ids`
        (``input_width`` is ``max_chars``, plus a word id for EFML models);
        a row of zeros is a padding token. ``<S>``/``</S>`` are added around each
        sentence here and removed from the output.
        state: LSTM state to start from (rows in batch order); zeros when ``None``.
        """
        tokens, lstm_out, mask, new_state = self._run(char_ids, state)
        seq = char_ids.shape[1]
        # Drop <S> (position 0) and </S> (position length + 1, zeroed by the mask).
        mask_f = mask.unsqueeze(-1).to(tokens.dtype)
        if torch.is_grad_enabled() and (tokens.requires_grad or lstm_out.requires_grad):
            token_layer = tokens[:, 1 : seq + 1] * mask_f
            layers = torch.cat(
                [
                    torch.cat([token_layer, token_layer], dim=-1).unsqueeze(0),
                    lstm_out[:, :, 1 : seq + 1] * mask_f.unsqueeze(0),
                ]
            )
        else:  # the same products, written into place (one copy of the LSTM layers fewer)
            P = tokens.shape[-1]
            layers = lstm_out.new_empty(lstm_out.shape[0] + 1, lstm_out.shape[1], seq, 2 * P)
            torch.mul(tokens[:, 1 : seq + 1], mask_f, out=layers[0, :, :, :P])
            layers[0, :, :, P:] = layers[0, :, :, :P]
            torch.mul(lstm_out[:, :, 1 : seq + 1], mask_f.unsqueeze(0), out=layers[1:])
        return BiLMOutput(layers, mask, new_state if return_state else None)

    def lm_hidden(self, char_ids: Tensor, *, dropout: float = 0.0) -> Tuple[Tensor, Tensor]:
        """The top LSTM layer *with* the boundary positions, for language modelling.

        Returns ``(hidden, lengths)``: hidden ``(batch, seq + 2, 2 * projection_dim)``
        where position 0 is ``<S>`` and ``lengths[b] + 1`` is ``</S>``; ``[..., :P]``
        is the forward LSTM (predicts the next word), ``[..., P:]`` the backward one
        (predicts the previous word).
        """
        _, lstm_out, mask, _ = self._run(char_ids, None, dropout=dropout)
        return lstm_out[-1], mask.sum(dim=1)

    def _run(self, char_ids: Tensor, state: Optional[LSTMState], dropout: float = 0.0) -> Tuple[Tensor, Tensor, Tensor, LSTMState]:
        cfg = self.config
        if char_ids.dim() != 3 or char_ids.shape[-1] != cfg.input_width or char_ids.is_floating_point():
            raise ValueError(
                Errors.E021.format(n_chars=cfg.input_width, shape=tuple(char_ids.shape), dtype=char_ids.dtype)
            )
        mask = (char_ids > 0).any(dim=-1)
        lengths = mask.sum(dim=1)
        with_bounds = self._add_boundaries(char_ids, lengths)
        tokens = self._encode_unique(with_bounds)  # (batch, seq + 2, P)
        lstm_out, new_state = self.lstm(tokens, lengths + 2, state, dropout=dropout)
        return tokens, lstm_out, mask, new_state

    def _encode_unique(self, char_ids: Tensor) -> Tensor:
        """Token encoder on each distinct token of the batch once, scattered back.

        Natural text repeats words (and every sentence has ``<S>``/``</S>``), so this
        skips most of the char-CNN work; gradients still reach every occurrence.
        """
        flat = char_ids.reshape(-1, char_ids.shape[-1])
        if flat.shape[0] == 0:
            return self.token_encoder(char_ids)
        if flat.device.type == "cpu":
            unique, inverse, keys = unique_rows(flat)
        else:  # on the device, without a trip through the host
            unique, inverse = torch.unique(flat, dim=0, return_inverse=True)
            keys = None
        cache = self.token_cache
        if cache is not None and not torch.is_grad_enabled():
            encoded = cache.encode(unique, self.token_encoder, keys=keys)
        else:
            encoded = self.token_encoder(unique)
        return encoded.index_select(0, inverse).view(*char_ids.shape[:-1], -1)

    def _add_boundaries(self, char_ids: Tensor, lengths: Tensor) -> Tensor:
        """``(batch, seq, W)`` -> ``(batch, seq + 2, W)`` with ``<S>`` first and ``</S>`` after each row's last token."""
        batch, seq, width = char_ids.shape
        out = char_ids.new_zeros(batch, seq + 2, width)
        out[:, 1 : seq + 1] = char_ids
        bos, eos = self.boundary_ids.to(char_ids.device)
        out[:, 0] = bos
        out[torch.arange(batch, device=char_ids.device), lengths + 1] = eos
        return out
