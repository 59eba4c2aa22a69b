"""The pretraining loop: one process, or many with ``torchrun`` (DistributedDataParallel).

OUTPUT_DIR gets ``model/`` (options.json + weights.hdf5 in the bilm-tf layout,
and vocab.txt), ``checkpoints/last.pt`` and ``metrics.jsonl`` (one JSON object
per evaluation: step, tokens, loss, dev_perplexity, tokens_per_s, ...) plus
``train_loss.jsonl`` (the loss of every step).

Checkpoints hold the model, optimizer, step, data position and every RNG state;
they are written to a temporary file and renamed, so a killed run never leaves a
corrupt one, and ``resume=True`` continues exactly where the last one was taken.
With ``torchrun --nproc_per_node N`` each global batch is split between the
ranks (gloo on CPU, NCCL on GPU) and every rank's loss is weighted by its share
of the targets, so N processes follow the same trajectory as one process with
the whole batch. Only rank 0 writes files and logs.
"""
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy
import torch
from thinc.api import Config

from ..bilm import BiLM, BiLMConfig, save_bilm
from ..atomic_write import atomic_path
from ..bilm.precision import check_device as check_precision_device
from ..bilm.threads import check_threads
from ..distributed import Distributed
from .data import epoch_batches, held_out_batches, read_sentences, shard
from .objective import BiLMLanguageModel
from .vocab import WordVocab

CHECKPOINT = "last.pt"


# [model] keys that describe the biLM's architecture (the rest, e.g. dropout, is training)
ARCHITECTURE_KEYS = (
    "char_embedding_dim", "filters", "n_highway", "activation", "lstm_dim", "projection_dim", "n_layers",
    "cell_clip", "proj_clip", "use_skip_connections",
)


def model_section(config: BiLMConfig) -> Dict[str, Any]:
    """The ``[model]`` architecture values of a loaded biLM (the inverse of :func:`bilm_config`)."""
    return {
        "char_embedding_dim": config.char_embedding_dim,
        "filters": [list(f) for f in config.filters],
        "n_highway": config.n_highway,
        "activation": config.activation,
        "lstm_dim": config.lstm_dim,
        "projection_dim": config.projection_dim,
        "n_layers": config.n_layers,
        "cell_clip": config.cell_clip,
        "proj_clip": config.proj_clip,
        "use_skip_connections": config.use_skip_connections,
    }


def bilm_config(model: Dict[str, Any]) -> BiLMConfig:
    return BiLMConfig(
        char_embedding_dim=model["char_embedding_dim"],
        filters=tuple(tuple(f) for f in model["filters"]),
        n_highway=model["n_highway"],
        activation=model["activation"],
        lstm_dim=model["lstm_dim"],
        projection_dim=model["projection_dim"],
        n_layers=model["n_layers"],
        cell_clip=model["cell_clip"] or None,
        proj_clip=model["proj_clip"] or None,
        use_skip_connections=model["use_skip_connections"],
    )


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    np_state = numpy.random.get_state()
    state["numpy"] = torch.from_numpy(np_state[1].astype("int64"))
    state["numpy_pos"] = int(np_state[2])
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    numpy.random.set_state(("MT19937", state["numpy"].numpy().astype("uint32"), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop log lines of steps after ``max_step`` (written before a crash)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf8").splitlines() if line.strip() and json.loads(line)["step"] <= max_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf8")


RUN_CONFIG = "config.cfg"
LOCK = ".lock"
# settings a resumed run must share with the checkpoint (others, e.g. max_steps, may change)
RESUME_FIXED = {"paths": ("train",), "corpus": ("lang", "sentences", "max_length", "limit"), "model": None, "vocab": None}


def pretrain(
    config: Config,
    output_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    init: Optional[BiLM] = None,
    freeze_steps: int = 0,
    device: Optional[str] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Train a biLM as ``config`` says; returns the last evaluation's metrics.

    ``output_dir`` is locked while the run lasts (a second run into it is an
    error). A folder holding a checkpoint is continued with ``resume``,
    replaced with ``overwrite``, and otherwise refused.

    init: start from this biLM's weights (continued pretraining, e.g. on a new
        domain); ``config["model"]`` must describe its architecture (see
        :func:`model_section`). The softmax and vocabulary are new.
    freeze_steps: with ``init``, train only the top LSTM layer (and the
        softmax) for the first ``freeze_steps`` steps.
    """
    output_dir = Path(output_dir)
    dist = Distributed(device)
    lock = None
    try:
        if dist.is_main:
            lock = _lock(output_dir)
        return _pretrain(config, output_dir, dist, resume=resume, overwrite=overwrite, init=init, freeze_steps=freeze_steps, progress=progress)
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)
        dist.close()


def saved_config(output_dir: Path) -> Config:
    """The config the run in ``output_dir`` was made with (its ``config.cfg``; empty if none), for ``--resume``."""
    path = Path(output_dir) / RUN_CONFIG
    return Config().from_disk(path, interpolate=False) if path.exists() else Config()


def _lock(output_dir: Path) -> Path:
    """Create ``output_dir/.lock`` holding our pid; an error if a live process holds it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = output_dir / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise ValueError(
                    f"{output_dir} is in use by another pretraining run (process {pid}). Wait for it, stop it, or write to another folder."
                ) from None
            lock.unlink(missing_ok=True)  # left by a killed run
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    raise ValueError(f"Could not lock {output_dir} (remove {lock} if no pretraining run is using the folder).")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_resume(saved_config: str, config: Config, output_dir: Path) -> None:
    """A resumed run must have the checkpoint's corpus, model and vocabulary settings."""
    saved = Config().from_str(saved_config, interpolate=False)
    for section, keys in RESUME_FIXED.items():
        names = keys if keys is not None else sorted(set(saved.get(section, {})) | set(config.get(section, {})))
        for key in names:
            before, now = saved.get(section, {}).get(key), config.get(section, {}).get(key)
            if isinstance(before, tuple) or isinstance(now, tuple):
                before, now = json.loads(json.dumps(before)), json.loads(json.dumps(now))
            if before != now:
                raise ValueError(
                    f"--resume: {section}.{key} is {now!r}, but the run in {output_dir} was made with {before!r}. "
                    f"Resume with the same setting, or start a new run in another folder (or --overwrite this one)."
                )


def _pretrain(
    config: Config, output_dir: Path, dist: Distributed, *, resume: bool, overwrite: bool, init: Optional[BiLM], freeze_steps: int, progress: bool
) -> Dict[str, Any]:
    T = config["training"]
    autocast = training_autocast(T.get("precision", "fp32"), dist.device)  # before reading the corpus: a clear error early
    metrics_path, loss_path = output_dir / "metrics.jsonl", output_dir / "train_loss.jsonl"
    checkpoint_file = output_dir / "checkpoints" / CHECKPOINT
    saved = _prepare_folder(config, output_dir, dist, resume=resume, overwrite=overwrite)
    train, dev = _read_corpus(config)
    vocab = _vocabulary(config, train, saved)
    if progress and dist.is_main:
        print(_corpus_summary(train, dev, vocab), file=sys.stderr, flush=True)
    threads = check_threads(T.get("threads", 0), "training.threads")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(T["seed"])
    random.seed(T["seed"])
    numpy.random.seed(T["seed"])
    model_cfg = config["model"]
    bilm = _new_bilm(model_cfg, init if saved is None else None, saved)
    lm = BiLMLanguageModel(bilm, vocab, dropout=model_cfg["dropout"], softmax=config["vocab"]["softmax"]).to(dist.device)
    if init is not None and saved is None:
        lm.bilm.load_state_dict(init.state_dict())
    optimizer = _optimizer(T, lm)
    step, epoch, batch_index, tokens_seen = _restore(saved, lm, optimizer, dist, (metrics_path, loss_path))
    trainer: torch.nn.Module = lm
    if dist.world_size > 1:
        trainer = torch.nn.parallel.DistributedDataParallel(
            lm, device_ids=[dist.device.index] if dist.device.type == "cuda" else None, find_unused_parameters=True
        )
    from tqdm import tqdm

    bar = tqdm(total=T["max_steps"], initial=step, unit="step", file=sys.stderr, disable=not (progress and dist.is_main), desc="pretrain")
    last_metrics: Dict[str, Any] = {}
    window_tokens, window_start = 0, time.perf_counter()
    deadline = time.monotonic() + T["max_seconds"] if T.get("max_seconds") else None
    batches = epoch_batches(train, T["batch_tokens"], T["seed"], epoch, T["length_buckets"])
    while step < T["max_steps"]:
        if batch_index >= len(batches):
            epoch, batch_index = epoch + 1, 0
            batches = epoch_batches(train, T["batch_tokens"], T["seed"], epoch, T["length_buckets"])
        global_batch = batches[batch_index]
        mine = [train[i] for i in shard(global_batch, dist.rank, dist.world_size)]
        if freeze_steps:  # only the top LSTM layer (and the softmax) learn at first
            lm.bilm.set_trainable("top" if step < freeze_steps else "all")
        trainer.train()
        optimizer.zero_grad(set_to_none=True)
        if mine:
            with autocast:
                out = trainer(mine)
            local_loss, local_targets = out.loss, out.n_targets
        else:  # more ranks than sentences in this batch
            local_loss, local_targets = sum(p.sum() * 0.0 for p in lm.parameters()), 0
        total_targets = dist.sum(float(local_targets))
        # DDP averages gradients over ranks: weight each rank by its share of the targets
        (local_loss * (local_targets * dist.world_size / total_targets)).backward()
        if T["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(lm.parameters(), T["grad_clip"])
        optimizer.step()
        loss = dist.sum(float(local_loss.detach()) * local_targets) / total_targets
        n_tokens = int(dist.sum(float(sum(len(train[i]) for i in global_batch)) / dist.world_size))
        step += 1
        batch_index += 1
        tokens_seen += n_tokens
        # a time budget ends the run like max_steps (all ranks agree on it)
        out_of_time = deadline is not None and dist.sum(float(time.monotonic() >= deadline)) > 0
        last_step = step == T["max_steps"] or out_of_time
        window_tokens += n_tokens
        bar.update(1)
        postfix = {"loss": f"{loss:.3f}", "ppl": f"{math.exp(min(loss, 50)):.1f}"}
        if deadline is not None:  # the step total says little when the time budget ends the run
            postfix["time_left"] = _minutes(max(0.0, deadline - time.monotonic()))
        bar.set_postfix(postfix)
        if dist.is_main:
            with loss_path.open("a", encoding="utf8") as f:
                f.write(json.dumps({"step": step, "epoch": epoch, "loss": loss}) + "\n")
        if step % T["eval_every"] == 0 or last_step:
            elapsed = time.perf_counter() - window_start
            last_metrics = {
                "step": step,
                "epoch": epoch,
                "tokens": tokens_seen,
                "loss": loss,
                "train_perplexity": math.exp(min(loss, 50)),
                "dev_perplexity": _held_out_perplexity(lm, dev, T["batch_tokens"], dist) if dev else None,
                "tokens_per_s": window_tokens / elapsed if elapsed > 0 else None,
            }
            window_tokens, window_start = 0, time.perf_counter()
            if dist.is_main:
                with metrics_path.open("a", encoding="utf8") as f:
                    f.write(json.dumps(last_metrics) + "\n")
                bar.write(
                    f"step {step}  tokens {tokens_seen}  loss {loss:.4f}  dev ppl {last_metrics['dev_perplexity'] or float('nan'):.2f}  "
                    f"{last_metrics['tokens_per_s'] or 0:.0f} tokens/s"
                )
        if step % T["checkpoint_every"] == 0 or last_step:
            if dist.is_main:
                _atomic_save(
                    {
                        "model": lm.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "batch_index": batch_index,
                        "tokens": tokens_seen,
                        "rng": _rng_state(),
                        "vocab": vocab.words,
                        "config": config.to_str(),
                        # an ELMoForManyLangs biLM: what [model] cannot describe (its token encoder, dictionaries)
                        **({"bilm_spec": lm.bilm.spec()} if lm.bilm.vocab is not None else {}),
                    },
                    checkpoint_file,
                )
            dist.barrier()
        if out_of_time:
            break
    bar.close()
    if dist.is_main:
        export(lm, output_dir / "model")
    dist.barrier()
    return last_metrics


def _prepare_folder(config: Config, output_dir: Path, dist: Distributed, *, resume: bool, overwrite: bool) -> Optional[Dict[str, Any]]:
    """Check the folder against resume/overwrite, clean a kill's leftovers, record the config; the checkpoint to resume from."""
    checkpoints = output_dir / "checkpoints"
    checkpoint_file = checkpoints / CHECKPOINT
    if resume and not checkpoint_file.exists():
        raise ValueError(f"--resume: nothing to resume in {output_dir} (no checkpoints/{CHECKPOINT}). Run without --resume to start.")
    if not resume and not overwrite and checkpoint_file.exists():
        raise ValueError(
            f"{output_dir} already holds a pretraining run (checkpoints/{CHECKPOINT}). Continue it with --resume, "
            f"replace it with --overwrite, or write to another folder."
        )
    saved = torch.load(checkpoint_file, map_location="cpu", weights_only=True) if resume else None
    if saved is not None:
        _check_resume(saved["config"], config, output_dir)
    if dist.is_main:
        checkpoints.mkdir(parents=True, exist_ok=True)
        for stale in checkpoints.glob("*.tmp"):  # a save cut short by a kill
            stale.unlink()
        config.to_disk(output_dir / RUN_CONFIG)
    return saved


def _read_corpus(config: Config) -> Tuple[List[List[str]], List[List[str]]]:
    """Training and held-out sentences, tokenised as ``[corpus]`` says."""
    paths, corpus = config["paths"], config["corpus"]
    read = dict(lang=corpus["lang"], sentences=corpus["sentences"], max_length=corpus["max_length"])
    train = read_sentences(paths["train"], limit=corpus["limit"], **read)
    dev = read_sentences(paths["dev"], limit=corpus["dev_limit"], **read) if paths.get("dev") else []
    if not train:
        raise ValueError(f"No training sentences in {paths['train']}.")
    if paths.get("dev") and not dev:
        raise ValueError(f"No held-out sentences in {paths['dev']}: give a file with text, or --paths.dev null for no held-out perplexity.")
    return train, dev


def _vocabulary(config: Config, train: List[List[str]], saved: Optional[Dict[str, Any]]) -> WordVocab:
    """The checkpoint's vocabulary when resuming, else built from the training text."""
    if saved is not None:
        return WordVocab(saved["vocab"])
    vocab_cfg = config["vocab"]
    vocab = WordVocab.build(train, max_size=vocab_cfg["max_size"], min_count=vocab_cfg["min_count"])
    if len(vocab) <= 3:
        raise ValueError(
            f"vocab.min_count = {vocab_cfg['min_count']} leaves no word of {config['paths']['train']} in the vocabulary "
            f"(no word occurs that often): lower it."
        )
    return vocab


def _new_bilm(model_cfg: Dict[str, Any], init: Optional[BiLM], saved: Optional[Dict[str, Any]]) -> BiLM:
    """The biLM to train: from ``[model]``, or, for an ELMoForManyLangs biLM (whose token
    encoder ``[model]`` does not describe), from its own options and dictionaries
    (``init``'s when starting, the checkpoint's when resuming)."""
    if init is not None and init.vocab is not None:
        return BiLM(init.config, vocab=init.vocab)
    if saved is not None and "bilm_spec" in saved:
        return BiLM.from_spec(saved["bilm_spec"], source="<checkpoint>")
    return BiLM(bilm_config(model_cfg))


def _restore(saved: Optional[Dict[str, Any]], lm: torch.nn.Module, optimizer: torch.optim.Optimizer, dist: Distributed, logs: Tuple[Path, Path]) -> Tuple[int, int, int, int]:
    """Load the checkpoint's state (or start fresh logs); ``(step, epoch, batch_index, tokens_seen)``."""
    if saved is None:
        if dist.is_main:
            for path in logs:
                path.unlink(missing_ok=True)
        return 0, 0, 0, 0
    lm.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    _set_rng_state(saved["rng"])
    if dist.is_main:
        for path in logs:
            _truncate_jsonl(path, saved["step"])
    return saved["step"], saved["epoch"], saved["batch_index"], saved["tokens"]


def _corpus_summary(train: List[List[str]], dev: List[List[str]], vocab: WordVocab) -> str:
    n_train = sum(map(len, train))
    known = sum(1 for sentence in train for word in sentence if word in vocab.index)
    line = f"train: {len(train):,} sentences, {n_train:,} tokens; vocabulary {len(vocab):,} words ({known / n_train:.1%} of training tokens)"
    if dev:
        line += f"; held out: {len(dev):,} sentences, {sum(map(len, dev)):,} tokens"
    return line


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def export(lm: BiLMLanguageModel, folder: Path) -> None:
    """``options.json`` + ``weights.hdf5`` (bilm-tf layout, what the loader and AllenNLP read) + ``vocab.txt``;
    an ELMoForManyLangs biLM in its own layout (config.json, dictionaries, .pkl state dicts) + ``vocab.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    if lm.bilm.vocab is not None:
        from ..bilm.efml import save_efml

        save_efml(lm.bilm, folder)
    else:
        save_bilm(lm.bilm, folder / "options.json", folder / "weights.hdf5")
    lm.vocab.to_file(folder / "vocab.txt")


def _optimizer(T: Dict[str, Any], lm: torch.nn.Module) -> torch.optim.Optimizer:
    name = T["optimizer"]
    if name == "adam":
        return torch.optim.Adam(lm.parameters(), lr=T["learn_rate"])
    if name == "adagrad":
        return torch.optim.Adagrad(lm.parameters(), lr=T["learn_rate"], initial_accumulator_value=1.0)
    raise ValueError(f"training.optimizer must be 'adam' or 'adagrad', got {name!r}.")


def training_autocast(precision: str, device: torch.device) -> torch.autocast:
    """The forward passes' autocast for ``training.precision``: off for ``"fp32"``;
    for ``"bf16"``, matrix products and convolutions in bfloat16 (the weights,
    optimizer state, loss and gradients stay float32). bf16 needs a device with
    native bf16 products (a clear error elsewhere). Held-out perplexity is
    always computed in float32, so runs in either precision compare."""
    if precision == "bf16":
        try:
            check_precision_device("bf16", device)
        except ValueError as err:
            raise ValueError(f"training.precision = 'bf16': {err} (--training.precision fp32)") from None
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _held_out_perplexity(lm: BiLMLanguageModel, dev: List[List[str]], batch_tokens: int, dist: Distributed) -> float:
    """exp(mean NLL) over both directions of the held-out sentences (computed on every rank alike)."""
    lm.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in held_out_batches(dev, batch_tokens):
            out = lm([dev[i] for i in batch])
            total += float(out.loss) * out.n_targets
            count += out.n_targets
    lm.train()
    return math.exp(min(total / max(count, 1), 700.0))  # a diverged model: huge, not an OverflowError
