"""A bounded cache of frozen biLM outputs, keyed by the span's tokens.

With a frozen biLM the layers of a training span never change between
epochs; caching them makes every epoch after the first cost little more than
the layer mix and the downstream models. Least recently used entries go first
once ``max_bytes`` is reached; ``float16`` halves the memory at the cost of
rounding the cached features (~3 significant digits).
"""
from collections import OrderedDict
from typing import Hashable, Optional

from thinc.types import Floats3d


class FeatureCache:
    def __init__(self, max_bytes: int, float16: bool = False) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.float16 = float16
        self._entries: "OrderedDict[Hashable, Floats3d]" = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Optional[Floats3d]:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value.astype("float32") if self.float16 else value

    def put(self, key: Hashable, value: Floats3d) -> None:
        if self.max_bytes == 0 or key in self._entries:
            return
        stored = value.astype("float16") if self.float16 else value.copy()
        if stored.nbytes > self.max_bytes:
            return
        self._entries[key] = stored
        self.nbytes += stored.nbytes
        while self.nbytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
