"""The biLM language-model objective (Peters et al. 2018, bilm-tf).

The forward LSTM's top layer at position ``t`` predicts word ``t + 1``, the
backward one predicts word ``t - 1``, over ``[<S>, w_1 .. w_n, </S>]``; one
softmax over the word vocabulary is shared by both directions. Large
vocabularies use an adaptive softmax (frequent words in a small head, rare
ones in cheaper tail clusters), so training cost barely grows with the vocabulary.
The loss is the mean negative log-likelihood over both directions' targets;
``exp(loss)`` is the perplexity bilm-tf reports.
"""
from typing import List, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..bilm import BiLM
from ..bilm.dropout import dropout
from .vocab import WordVocab

# Below this vocabulary size a full softmax is cheap and exact.
ADAPTIVE_MIN_VOCAB = 20_000


class LMLoss(NamedTuple):
    loss: Tensor  # mean NLL over all targets of both directions
    n_targets: int


# The adaptive softmax runs over this many target rows at a time: each piece's
# (rows, head size) buffers stay under glibc's mmap threshold (32 MiB) and are
# reused from the heap, where a whole batch's (8,192 x 4,002 floats, 131 MiB)
# came from fresh pages every step, page faults and all (one zero-fill of it took
# ~200 ms here; pretrain_small steps ran 1.04-1.15x faster, fp32 and bf16 alike).
SOFTMAX_CHUNK_ROWS = 1024


def adaptive_loss(softmax: nn.AdaptiveLogSoftmaxWithLoss, x: Tensor, y: Tensor) -> Tensor:
    """The mean negative log-likelihood of ``y`` ``(N,)`` under ``softmax`` for ``x`` ``(N, P)``:
    ``softmax(x, y).loss``, computed :data:`SOFTMAX_CHUNK_ROWS` rows at a time."""
    if len(y) <= SOFTMAX_CHUNK_ROWS:
        return softmax(x, y).loss
    pieces = [softmax(xs, ys).loss * len(ys) for xs, ys in zip(x.split(SOFTMAX_CHUNK_ROWS), y.split(SOFTMAX_CHUNK_ROWS))]
    return torch.stack(pieces).sum() / len(y)


def adaptive_cutoffs(n_words: int) -> List[int]:
    """Cluster boundaries for the adaptive softmax: a head of the ~4k most frequent words."""
    cutoffs = [c for c in (4_000, 20_000, 100_000) if c < n_words - 1]
    return cutoffs or [n_words // 2]


class BiLMLanguageModel(nn.Module):
    """A :class:`BiLM` plus the shared output softmax.

    forward(sentences) -> :class:`LMLoss`, for a list of token lists.
    """

    def __init__(self, bilm: BiLM, vocab: WordVocab, *, dropout: float = 0.1, softmax: str = "auto") -> None:
        super().__init__()
        self.bilm = bilm
        self.vocab = vocab
        self.dropout = dropout
        P = bilm.config.projection_dim
        if softmax == "auto":
            softmax = "adaptive" if len(vocab) >= ADAPTIVE_MIN_VOCAB else "full"
        if softmax not in ("full", "adaptive"):
            raise ValueError(f"softmax must be 'auto', 'full' or 'adaptive', got {softmax!r}")
        self.softmax_kind = softmax
        if softmax == "adaptive":
            self.softmax = nn.AdaptiveLogSoftmaxWithLoss(P, len(vocab), adaptive_cutoffs(len(vocab)), div_value=4.0)
        else:
            self.softmax = nn.Linear(P, len(vocab))

    def forward(self, sentences: Sequence[Sequence[str]]) -> LMLoss:
        device = next(self.parameters()).device
        char_ids = self.bilm.batch_to_ids(sentences).to(device)
        hidden, lengths = self.bilm.lm_hidden(char_ids, dropout=self.dropout if self.training else 0.0)
        P = self.bilm.config.projection_dim
        if self.training and self.dropout > 0:
            hidden = dropout(hidden, self.dropout)
        # Every row's predicting states gathered at once (one index op, one
        # backward node): indexing row by row would give each row a backward
        # that fills a zero tensor the size of the whole batch (quadratic).
        rows: List[int] = []
        positions: List[int] = []
        next_words: List[int] = []
        previous_words: List[int] = []
        for row, tokens in enumerate(sentences):
            ids = self.vocab.ids(tokens)  # length n + 2
            n = len(ids)
            rows.extend([row] * (n - 1))
            positions.extend(range(n - 1))
            next_words.extend(ids[1:])  # forward at <S>..w_n predicts w_1..</S>
            previous_words.extend(ids[:-1])  # backward at w_1..</S> predicts <S>..w_n
        row_index = torch.tensor(rows, dtype=torch.long, device=device)
        position = torch.tensor(positions, dtype=torch.long, device=device)
        x = torch.cat([hidden[row_index, position, :P], hidden[row_index, position + 1, P:]])
        y = torch.tensor(next_words + previous_words, dtype=torch.long, device=device)
        targets = y
        # The softmax and the loss in float32 even under bf16 autocast (training.precision):
        # on CPU autocast would leave log_softmax in bf16 (~3 significant digits).
        with torch.autocast(device_type=device.type, enabled=False):
            x = x.float()
            if self.softmax_kind == "adaptive":
                loss = adaptive_loss(self.softmax, x, y)
            else:
                loss = F.cross_entropy(self.softmax(x), y)
        return LMLoss(loss, len(targets))
