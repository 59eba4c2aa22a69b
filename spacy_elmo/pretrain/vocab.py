"""The word vocabulary of the language model's output softmax.

As in bilm-tf: ``<S>``, ``</S>`` and ``<UNK>`` first, then words by falling
frequency (ties in first-seen order). Saved as a text file, one word per line.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Union

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"
SPECIALS = (BOS, EOS, UNK)


class WordVocab:
    def __init__(self, words: Sequence[str]) -> None:
        if list(words[:3]) != list(SPECIALS):
            raise ValueError(f"A vocabulary starts with {', '.join(SPECIALS)}; got {list(words[:3])}.")
        self.words: List[str] = list(words)
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("A vocabulary lists every word once.")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def bos(self) -> int:
        return 0

    @property
    def eos(self) -> int:
        return 1

    @property
    def unk(self) -> int:
        return 2

    def ids(self, tokens: Sequence[str]) -> List[int]:
        """``[<S>, tokens..., </S>]`` as ids (unknown words -> ``<UNK>``)."""
        get = self.index.get
        return [self.bos] + [get(t, self.unk) for t in tokens] + [self.eos]

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int = 0, min_count: int = 1) -> "WordVocab":
        """Most frequent words of ``sentences`` (``max_size`` includes the 3 specials; 0: no limit)."""
        counts: Counter = Counter()
        for tokens in sentences:
            counts.update(tokens)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = [w for w, c in counts.most_common() if c >= min_count]
        if max_size:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + ranked)

    def unigram_counts(self, sentences: Iterable[Sequence[str]]) -> List[int]:
        """Counts of every vocabulary id as a prediction target (for the unigram perplexity)."""
        counts = [0] * len(self)
        for tokens in sentences:
            ids = self.ids(tokens)
            for i in ids[1:]:  # forward targets: tokens and </S>
                counts[i] += 1
            for i in ids[:-1]:  # backward targets: <S> and tokens
                counts[i] += 1
        return counts

    def to_file(self, path: Union[str, Path]) -> None:
        Path(path).write_text("\n".join(self.words) + "\n", encoding="utf8")

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "WordVocab":
        return cls(Path(path).read_text(encoding="utf8").rstrip("\n").split("\n"))
