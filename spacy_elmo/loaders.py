"""Where biLM weights come from, and how they reach a pipeline: the one place to read.

Loading is three steps, each one function:

1. **locate** -- :func:`resolve_source` turns a *source* into the
   ``(options, weights)`` file paths (downloading a published model once);
   an ELMoForManyLangs folder is located by :func:`efml_folder`;
2. **read** -- :func:`spacy_elmo.bilm.load_bilm` builds the torch
   :class:`~spacy_elmo.bilm.BiLM` from those files, or
   :func:`spacy_elmo.bilm.load_efml` from an EFML folder (checked, nothing
   unpickled); :func:`load_source` does 1 and 2 for any source;
3. **attach** -- :func:`spacy_elmo.architectures.attach_bilm` puts it into an
   ``ElmoTok2Vec`` model and sets every width from it.

The ``elmo`` pipe's ``initialize`` runs 1 and 2 through a *loader* (a
``registry.model_loaders`` function of no arguments returning a ``BiLM``:
``spacy-elmo.ElmoLoader.v1`` below by default, which takes every layout, or
``[initialize.components.elmo.loader]`` in a config), then 3. From then on the weights are part of the pipeline
(``nlp.to_disk`` stores them), so a saved or packaged pipeline never needs the
files again. ``source`` on the factory is only the loader's default argument.

A *source* is one of:

* a folder holding ``options.json`` + ``weights.hdf5``, or AllenNLP's
  ``*_options.json`` + ``*_weights.hdf5``, PubMed's ``options262.json`` +
  ``*_weights_PubMed_only.hdf5``, NLPL's ``options.json`` + ``model.hdf5``
  (one options and one weights file of any names; several are paired by stem,
  else an error lists the candidates);
* a ``.zip`` of such a folder (NLPL repository downloads), unpacked once into
  the cache folder;
* an ELMoForManyLangs folder (``config.json``, ``char.dic``, ``word.dic``,
  ``token_embedder.pkl``, ``encoder.pkl``) or its ``.zip``;
* the two file paths, as a list ``[options, weights]``;
* a published model's name (``small``, ``medium``, ``original``,
  ``original-5.5b``, ``pubmed``, ``pt``, ...: the catalogue
  ``spacy_elmo/models.json``), downloaded once from its publisher's address
  into the cache folder (``$SPACY_ELMO_CACHE``, default
  ``~/.cache/spacy-elmo``); an existing local path of the same name wins.

Loaders are registered in ``registry.model_loaders`` (setup.cfg entry points):
a loader is a function of no arguments returning a :class:`~.bilm.BiLM`, so
other formats can be added without touching the component.
"""
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

from .bilm import BiLM, is_efml_folder, load_bilm, load_efml
from .atomic_write import atomic_path
from .errors import Errors

Source = Union[str, Path, Sequence[Union[str, Path]]]
BiLMLoader = Callable[[], BiLM]

CACHE_ENV = "SPACY_ELMO_CACHE"

def catalogue() -> List[Dict[str, Any]]:
    """The published models this package knows by name (``spacy_elmo/models.json``)."""
    return json.loads((Path(__file__).parent / "models.json").read_text(encoding="utf8"))["models"]


# name -> its row of the catalogue
PUBLISHED: Dict[str, Dict[str, Any]] = {row["name"]: row for row in catalogue()}
# Output width (2 x projection_dim) of each published model whose width is known.
PUBLISHED_WIDTH = {name: row["width"] for name, row in PUBLISHED.items() if row.get("width")}


def published_names() -> str:
    """The catalogue's names for an error message (the ELMoForManyLangs languages as one pattern)."""
    efml = [name for name, row in PUBLISHED.items() if row["layout"] == "efml"]
    names = [name for name in PUBLISHED if name not in efml]
    if efml:
        names.append(f"efml-<language> ({len(efml)} languages, e.g. efml-de)")
    return ", ".join(names) + "; python -m spacy_elmo models lists them"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spacy-elmo"


def published_urls(name: str) -> Dict[str, str]:
    """The files of a published model and their addresses: ``{"options.json": url,
    "weights.hdf5": url}`` (bilm-tf layout) or ``{"model.zip": url}`` (ELMoForManyLangs)."""
    row = PUBLISHED[name]
    if row["layout"] == "efml":
        return {"model.zip": row["zip"]}
    return {"options.json": row["options"], "weights.hdf5": row["weights"]}


def resolve_source(source: Source, *, download: bool = True) -> Tuple[Path, Path]:
    """The ``(options, weights)`` paths of a source (downloading a published model if needed)."""
    if isinstance(source, (list, tuple)):
        if len(source) != 2:
            raise ValueError(Errors.E041.format(source=source, names=published_names()))
        return Path(source[0]), Path(source[1])
    text = str(source)
    path = Path(text).expanduser()
    # an existing file or folder wins over a published name (a local folder "small")
    if text.lower() in PUBLISHED and not path.exists():
        if PUBLISHED[text.lower()]["layout"] == "efml":
            raise ValueError(f"{text} is an ELMoForManyLangs model: it has no options/weights pair. Load it with load_source({text!r}).")
        return fetch_published(text.lower(), download=download)
    if path.is_dir():
        return _pair_in_folder(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return _pair_in_folder(_unpacked_zip(path))
    if path.is_file() and path.name.endswith("options.json"):
        weights = path.with_name(path.name[: -len("options.json")] + "weights.hdf5")
        return path, weights
    raise ValueError(Errors.E041.format(source=text, names=published_names()))


def _options_files(folder: Path) -> List[Path]:
    """options.json, AllenNLP's *_options.json, options262.json, ...: JSON files named for options."""
    return sorted(p for p in folder.glob("*.json") if "options" in p.name.lower() and p.is_file())


def _weight_files(folder: Path) -> List[Path]:
    """HDF5 files named for weights (weights.hdf5, *_weights.hdf5, *_weights_PubMed_only.hdf5);
    failing that, NLPL's model.hdf5, or the folder's only HDF5 file."""
    hdf5 = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".hdf5", ".h5") and p.is_file())
    named = [p for p in hdf5 if "weight" in p.name.lower()]
    if named:
        return named
    model = [p for p in hdf5 if p.name.lower() in ("model.hdf5", "model.h5")]
    return model or (hdf5 if len(hdf5) == 1 else [])


def _pair_in_folder(folder: Path) -> Tuple[Path, Path]:
    """The ``(options, weights)`` pair of a model folder, in any of the published layouts."""
    if (folder / "options.json").is_file() and (folder / "weights.hdf5").is_file():
        return folder / "options.json", folder / "weights.hdf5"
    options, weights = _options_files(folder), _weight_files(folder)
    if len(options) == 1 and len(weights) == 1:
        return options[0], weights[0]
    # several: pair them by the stem before "options" / "weights" (elmo_x_options.json + elmo_x_weights.hdf5)
    pairs = [
        (o, w) for o in options for w in weights
        if o.name.lower().split("options")[0] == w.name.lower().split("weight")[0]
    ]
    if len(pairs) == 1:
        return pairs[0]
    found = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    if not options or not weights:
        raise ValueError(Errors.E042.format(path=folder, found=found))
    candidates = ", ".join(p.name for p in options + weights)
    raise ValueError(Errors.E043.format(path=folder, found=candidates))


def _unpacked_zip(path: Path) -> Path:
    """A model .zip (as the NLPL repository publishes them) unpacked once into the cache, safely."""
    import hashlib
    import zipfile

    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "unzipped" / f"{path.stem}-{key}"
    if target.is_dir():
        return target
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"ELMo source {path} is not a readable zip file ({err}): download it again.") from None
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    try:
        with archive:
            for member in archive.infolist():
                name = Path(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"ELMo source {path}: the zip holds an unsafe path {member.filename!r}; not unpacked.")
                if member.is_dir():
                    continue
                dest = tmp / name.name  # the model files, flattened
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def fetch_published(name: str, *, download: bool = True) -> Tuple[Path, Path]:
    """``(options, weights)`` of a published bilm-tf model in the cache, downloading missing files once."""
    paths = fetch_published_files(name, download=download)
    return paths["options.json"], paths["weights.hdf5"]


def fetch_published_files(name: str, *, download: bool = True) -> Dict[str, Path]:
    """Every file of a published model in the cache (see :func:`published_urls`), downloading missing ones once."""
    target = cache_dir() / name
    urls = published_urls(name)
    paths = {filename: target / filename for filename in urls}
    missing = [filename for filename, path in paths.items() if not path.is_file()]
    present = [filename for filename in paths if filename not in missing]
    if missing:
        try:
            if not download:
                raise OSError("downloads are disabled")
            target.mkdir(parents=True, exist_ok=True)
            for filename in missing:
                digest = download_file(urls[filename], paths[filename])
                record_sha256(paths[filename], digest)
        except OSError as err:  # URLError is an OSError
            files = "\n".join(f"  {urls[f]}\n    -> {paths[f]}" for f in missing)
            raise OSError(Errors.E044.format(name=name, err=err, files=files, env=CACHE_ENV)) from None
    for filename in present:
        verify_sha256(paths[filename])
    return paths


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def record_sha256(path: Path, digest: str) -> None:
    """Keep a downloaded file's SHA-256 beside it (``NAME.sha256``) for :func:`verify_sha256`."""
    with atomic_path(path.with_name(path.name + ".sha256")) as tmp:
        tmp.write_text(digest + "\n", encoding="utf8")


def verify_sha256(path: Path) -> None:
    """A cached file must still have the SHA-256 recorded at its download (a file put there
    by hand is recorded at its first use)."""
    record = path.with_name(path.name + ".sha256")
    actual = _sha256_of(path)
    if not record.is_file():
        record_sha256(path, actual)
        return
    expected = record.read_text(encoding="utf8").strip()
    if actual != expected:
        raise OSError(Errors.E079.format(path=path, expected=expected, actual=actual, record=record))


def download_file(url: str, path: Path, *, timeout: float = 20.0) -> str:
    """Stream ``url`` to ``path`` with a progress bar; the file appears only when complete.

    ``timeout``: seconds to connect and for each read (a stalled server is an error).
    Returns the file's SHA-256 (hex).
    """
    import hashlib

    from tqdm import tqdm

    digest = hashlib.sha256()
    with atomic_path(path) as tmp, urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        written = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, file=sys.stderr) as bar:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        if total is not None and written != total:
            raise OSError(f"the download of {url} stopped after {written:,} of {total:,} bytes")
    return digest.hexdigest()


def efml_folder(source: Source) -> Union[Path, None]:
    """The folder of an ELMoForManyLangs source (a folder or its .zip), else ``None``."""
    if isinstance(source, (list, tuple)):
        return None
    text = str(source)
    path = Path(text).expanduser()
    row = PUBLISHED.get(text.lower())
    if row is not None and row["layout"] == "efml" and not path.exists():
        path = fetch_published_files(text.lower())["model.zip"]
    if path.is_file() and path.suffix.lower() == ".zip":
        path = _unpacked_zip(path)
    return path if is_efml_folder(path) else None


def load_source(source: Source) -> BiLM:
    """The biLM of any source: bilm-tf / AllenNLP files, a published name, a zip, an EFML folder."""
    folder = efml_folder(source)
    if folder is not None:
        return load_efml(folder)
    options, weights = resolve_source(source)
    return load_bilm(options, weights)


def bilm_tf_loader_v1(source: Source = "small") -> BiLMLoader:
    """Registered as ``spacy-elmo.BilmTfLoader.v1``: options.json + HDF5 from any source.

    source: a folder, a ``.zip``, ``[options, weights]`` or a published name of the bilm-tf layout.
    """

    def load() -> BiLM:
        options, weights = resolve_source(source)
        return load_bilm(options, weights)

    load.source = source  # type: ignore[attr-defined]
    return load


def elmo_loader_v1(source: Source = "small") -> BiLMLoader:
    """Registered as ``spacy-elmo.ElmoLoader.v1``: any source (:func:`load_source`), the component's default.

    source: a folder or ``.zip`` of any layout (bilm-tf, AllenNLP, PubMed, NLPL, ELMoForManyLangs),
        ``[options, weights]``, or a published name (``python -m spacy_elmo models``).
    """

    def load() -> BiLM:
        return load_source(source)

    load.source = source  # type: ignore[attr-defined]
    return load


def efml_loader_v1(folder: str) -> BiLMLoader:
    """Registered as ``spacy-elmo.EFMLLoader.v1``: an ELMoForManyLangs model folder (or its .zip).

    folder: the unpacked model folder, its ``.zip``, or a published ``efml-<language>`` name.
    """

    def load() -> BiLM:
        found = efml_folder(folder)
        return load_efml(found if found is not None else folder)

    load.source = folder  # type: ignore[attr-defined]
    return load
