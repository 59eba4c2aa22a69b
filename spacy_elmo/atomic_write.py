"""Files that appear whole or not at all.

``with atomic_path(path) as tmp:`` write to ``tmp`` (a hidden name beside
``path``, unique to this process, so two writers never share one); on success
it is renamed to ``path`` (atomic on one file system), on any error or
interruption it is removed. Used for weight files, checkpoints, downloads and
``embed`` outputs.
"""
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union


@contextmanager
def atomic_path(path: Union[str, Path], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path for ``path``; ``fsync``: flush it to disk before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if fsync:
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
