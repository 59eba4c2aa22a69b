"""The context-independent token representation: characters -> one vector per token.

char embedding -> one convolution per filter width, max-pooled over the
characters, then ``activation`` -> highway layers -> [word embedding; that]
(ELMoForManyLangs only) -> linear projection to ``projection_dim``. Parameters
are kept in TensorFlow orientation (``y = x @ W + b``) where that makes the
mapping to bilm-tf files a plain copy.

A token's input row holds ``max_characters_per_token`` character ids and, when
the config has a word embedding, its word id last (``config.input_width``).
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import BiLMConfig
from .precision import addmm, mm, onednn_applies, onednn_linear, onednn_packed_out_in

# Tokens per block of the character convolutions on CPU (cache-sized work).
CPU_BLOCK = 64
# Without autograd (inference) tokens are encoded in blocks of exactly this many
# rows (the last one padded): a matrix product's rows then do not depend on
# their neighbours or on how many tokens came in (BLAS picks its kernels by
# shape), so a token's vector is bit for bit the same in any batch. This is
# what lets the token cache (``token_cache.py``) be exact. On CUDA, 1024-row
# blocks ran the token encoder 1.5-1.8x faster than 256 (one H200,
# ``benchmarks/bench_token_block.py``), and stayed bit-identical across batches.
INFERENCE_BLOCK = {"cpu": 64, "cuda": 1024}
DEFAULT_INFERENCE_BLOCK = 256
# On CPU, inference convolves only up to each token's padding run (as the
# training path does, see ``_convolve_trimmed``) and keeps the fixed shapes
# where they matter: the character windows of all tokens go through each
# filter's matrix product in chunks of exactly this many rows (the last one
# padded), so a window's value never depends on the batch either.
WINDOW_CHUNK = 1024


class Highway(nn.Module):
    """bilm-tf's highway layer: ``g * relu(x W_t + b_t) + (1 - g) * x``, ``g = sigmoid(x W_c + b_c)``.

    x: ``(n, dim)`` -> ``(n, dim)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w_carry = nn.Parameter(torch.empty(dim, dim))
        self.b_carry = nn.Parameter(torch.zeros(dim))
        self.w_transform = nn.Parameter(torch.empty(dim, dim))
        self.b_transform = nn.Parameter(torch.zeros(dim))
        nn.init.xavier_uniform_(self.w_carry)
        nn.init.xavier_uniform_(self.w_transform)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(addmm(self.b_carry, x, self.w_carry))
        transform = torch.relu(addmm(self.b_transform, x, self.w_transform))
        return gate * transform + (1.0 - gate) * x


class TokenEncoder(nn.Module):
    """Character CNN token encoder (plus a word embedding when the config has one).

    ids: ``(..., input_width)`` long, shifted ids (0 = padding token)
    -> ``(..., projection_dim)`` float.
    """

    def __init__(self, config: BiLMConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.char_embedding_dim
        # Row 0 is the padding id and stays zero; rows 1.. are the published ids 0.. (bytes: 0..260).
        self.char_embedding = nn.Parameter(torch.randn(config.char_rows + 1, dim) * 0.1)
        with torch.no_grad():
            self.char_embedding[0].zero_()
        self.convolutions = nn.ModuleList(nn.Conv1d(dim, n, kernel_size=width) for width, n in config.filters)
        n_filters = config.n_filters
        self.highways = nn.ModuleList(Highway(n_filters) for _ in range(config.n_highway))
        self.n_chars = config.max_characters_per_token
        self.word_embedding: Optional[nn.Parameter] = None
        if config.word_embedding_dim:
            # row 0: padding token (zero); rows 1..: word.dic ids 0..
            self.word_embedding = nn.Parameter(torch.randn(config.n_words + 1, config.word_embedding_dim) * 0.1)
            with torch.no_grad():
                self.word_embedding[0].zero_()
        self.has_projection = config.has_projection
        if self.has_projection:
            self.w_proj = nn.Parameter(torch.empty(n_filters + config.word_embedding_dim, config.projection_dim))
            self.b_proj = nn.Parameter(torch.zeros(config.projection_dim))
            nn.init.xavier_uniform_(self.w_proj)
        self._activation = torch.relu if config.activation == "relu" else torch.tanh

    @property
    def output_dim(self) -> int:
        return self.config.projection_dim

    def forward(self, char_ids: Tensor) -> Tensor:
        lead = char_ids.shape[:-1]
        flat = char_ids.reshape(-1, char_ids.shape[-1])
        if not torch.is_grad_enabled() and flat.shape[0] > 0:
            return self._forward_invariant(flat).reshape(*lead, self.output_dim)
        x = self._convolve_trimmed(flat[:, : self.n_chars])
        x = self._highway_and_project(x, flat)
        return x.reshape(*lead, x.shape[-1])

    def _convolve_trimmed(self, chars: Tensor) -> Tensor:
        """The autograd path's :meth:`_convolve`: ``(n, max_chars)`` -> ``(n, n_filters)``.

        A token's ids end in a run of one repeated id (its padding), and every
        window inside that run has the same value, so the convolutions need
        only the characters up to the run's start plus the widest filter
        (:meth:`_run_starts`): the max over windows is then over the same set of
        values. Tokens are taken shortest first, in blocks (64 on CPU, to keep
        a block's windows in cache), each block cut to its own longest token:
        the same features as over all ``max_chars`` positions, with the
        convolutions over ~10-20 positions instead of 50 on real text.
        Inference keeps its fixed shapes instead (see ``INFERENCE_BLOCK``).
        """
        n, max_chars = chars.shape
        if n == 0:
            return self._convolve(chars)
        blocks, order = self._trimmed_blocks(chars, CPU_BLOCK if chars.device.type == "cpu" else n)
        pieces = [self._convolve(block) for block in blocks]
        x = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return _unsort(x, order)

    def _trimmed_blocks(self, chars: Tensor, block: int) -> Tuple[List[Tensor], Tensor]:
        """``(n, max_chars)`` -> the rows sorted by the characters they need (their
        padding run's start plus the widest filter), in blocks of ``block`` rows,
        each cut to its longest; and the sort order (see :func:`_unsort`)."""
        n, max_chars = chars.shape
        keep = (self._run_starts(chars) + self.config.max_filter_width).clamp(max=max_chars)
        keep, order = torch.sort(keep)
        chars = chars.index_select(0, order)
        # one host sync for all blocks: each block's longest kept length
        block_keep = keep[torch.arange(block - 1, n + block - 1, block, device=keep.device).clamp(max=n - 1)].tolist()
        return [chars[i : i + block, :k] for i, k in zip(range(0, n, block), block_keep)], order

    @staticmethod
    def _run_starts(chars: Tensor) -> Tensor:
        """``(n, max_chars)`` -> ``(n,)``: where each row's final run of one repeated id starts."""
        positions = torch.arange(1, chars.shape[1] + 1, device=chars.device)
        return ((chars != chars[:, -1:]) * positions).amax(dim=1)

    def _forward_invariant(self, flat: Tensor) -> Tensor:
        """``(n, max_chars)`` -> ``(n, projection_dim)`` in fixed-size blocks (see ``INFERENCE_BLOCK``)."""
        block = INFERENCE_BLOCK.get(flat.device.type, DEFAULT_INFERENCE_BLOCK)
        n = flat.shape[0]
        padded = -(-n // block) * block
        if padded != n:
            flat = torch.cat([flat, flat.new_zeros(padded - n, flat.shape[1])])
        if flat.device.type == "cpu":
            pooled = self._convolve_chunked(flat[:n, : self.n_chars])
            if padded != n:
                pooled = torch.cat([pooled, pooled.new_zeros(padded - n, pooled.shape[1])])
            out = [self._highway_and_project(pooled[i : i + block], flat[i : i + block]) for i in range(0, padded, block)]
        else:
            out = []
            for i in range(0, padded, block):
                rows = flat[i : i + block]
                out.append(self._highway_and_project(self._convolve(rows[:, : self.n_chars]), rows))
        return torch.cat(out)[:n] if len(out) > 1 else out[0][:n]

    def _convolve_chunked(self, chars: Tensor) -> Tensor:
        """The inference path's convolutions on CPU: ``(n, max_chars)`` -> ``(n, n_filters)``.

        Tokens are sorted by how many characters they need (their padding run's
        start plus the widest filter, see :meth:`_convolve_trimmed`) and taken in
        blocks of ``CPU_BLOCK``, each cut to its longest; the windows of every
        block go through one filter's product in chunks of ``WINDOW_CHUNK``
        rows, then each token's windows are max-pooled. The features are the
        full 50-position convolution's (the windows left out repeat a kept
        all-padding window), and every product has one fixed shape.
        """
        blocks, order = self._trimmed_blocks(chars, CPU_BLOCK)
        chunk = WINDOW_CHUNK
        embedded = [F.embedding(block, self.char_embedding) for block in blocks]
        pooled: List[Tensor] = []
        for conv in self.convolutions:
            n_out, dim, width = conv.weight.shape
            weight = conv.weight.reshape(n_out, dim * width).t()
            windows = [e.unfold(1, width, 1).reshape(-1, dim * width) for e in embedded]
            rows = torch.cat(windows) if len(windows) > 1 else windows[0]
            total = rows.shape[0]
            padded = -(-total // chunk) * chunk
            if padded != total:
                rows = torch.cat([rows, rows.new_zeros(padded - total, dim * width)])
            if onednn_applies(rows, conv.weight):  # 1.4-2.3x torch.mm on the wider filters; fixed shapes: batch-invariant
                packed = onednn_packed_out_in(conv.weight)
                y = torch.cat([onednn_linear(rows[i : i + chunk], packed) for i in range(0, padded, chunk)])
            else:
                y = torch.cat([mm(rows[i : i + chunk], weight) for i in range(0, padded, chunk)])
            pieces = y[:total].split([w.shape[0] for w in windows])
            # max(y + b) == max(y) + b exactly (rounding is monotone): add b after pooling
            maxima = [p.view(e.shape[0], -1, n_out).amax(dim=1) for p, e in zip(pieces, embedded)]
            pooled.append(self._activation(torch.cat(maxima) + conv.bias))
        return _unsort(torch.cat(pooled, dim=-1), order)

    def _highway_and_project(self, x: Tensor, rows: Tensor) -> Tensor:
        """``(n, n_filters)`` (and the tokens' id rows, for word ids) -> ``(n, projection_dim)``."""
        for highway in self.highways:
            x = highway(x)
        if self.word_embedding is not None:
            words = F.embedding(rows[:, self.n_chars], self.word_embedding)
            x = torch.cat([words.to(x.dtype), x], dim=-1)
        return addmm(self.b_proj, x, self.w_proj) if self.has_projection else x

    def _convolve(self, char_ids: Tensor) -> Tensor:
        """``(n, max_chars)`` -> ``(n, n_filters)``: each convolution max-pooled, then activated.

        A convolution is computed as one matrix product over the character
        windows (``unfold``), which is several times faster on CPU than a
        1-D convolution with so few input channels.
        """
        n, max_chars = char_ids.shape
        embedded = F.embedding(char_ids, self.char_embedding)  # (n, max_chars, dim)
        pooled: List[Tensor] = []
        for conv in self.convolutions:
            n_out, dim, width = conv.weight.shape
            positions = max_chars - width + 1
            # (n, positions, dim, width): window features in Conv1d's weight order
            windows = embedded.unfold(1, width, 1).reshape(n * positions, dim * width)
            y = mm(windows, conv.weight.reshape(n_out, dim * width).t())
            # max(y + b) == max(y) + b exactly (rounding is monotone): add b after pooling
            pooled.append(self._activation(y.view(n, positions, n_out).amax(dim=1) + conv.bias))
        return torch.cat(pooled, dim=-1)


def _unsort(x: Tensor, order: Tensor) -> Tensor:
    """Rows of ``x`` (in the order ``order`` sorted them) back in their original order."""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.shape[0], device=order.device)
    return x.index_select(0, inverse)
