"""The one schema of a pretraining config (``configs/pretrain_*.cfg``).

Every section and key the pretraining loop reads, with its type and range.
:func:`check_config` runs before anything is read or written: a missing, unknown
(misspelt) or out-of-range setting is one error naming the setting, the value
and what is allowed, instead of a traceback or a run that "works" on nonsense
(a negative ``grad_clip`` is gradient ascent; ``vocab.max_size = -1`` a
three-word vocabulary).
"""
import difflib
import math
from typing import Any, Callable, Dict, Optional, Tuple

# (check, what is allowed); a check returns True for a valid value
Rule = Tuple[Callable[[Any], bool], str]


def _int(low: int) -> Rule:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f"an integer >= {low}")


def _number(low: float, high: float = math.inf, *, open_low: bool = False) -> Rule:
    def check(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (v > low if open_low else v >= low) and v <= high

    bound = f"> {low:g}" if open_low else f">= {low:g}"
    return (check, f"a number {bound}" + (f" and <= {high:g}" if high != math.inf else ""))


def _choice(*values: str) -> Rule:
    return (lambda v: v in values, "one of " + ", ".join(repr(v) for v in values))


def _optional_clip() -> Rule:
    check, _ = _number(0.0, open_low=True)
    return (lambda v: v is None or check(v), "a number > 0, or null for no clipping")


def _filters(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(f, (list, tuple)) and len(f) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in f) for f in v)
    )


SCHEMA: Dict[str, Dict[str, Rule]] = {
    "paths": {
        "train": ((lambda v: v is None or isinstance(v, str)), "a file or folder of text (or null, then --paths.train)"),
        "dev": ((lambda v: v is None or isinstance(v, str)), "a file or folder of held-out text, or null"),
    },
    "corpus": {
        "lang": ((lambda v: isinstance(v, str) and bool(v)), "a spaCy language code, e.g. 'en'"),
        "sentences": _choice("lines", "sentencizer"),
        "max_length": _int(1),
        "limit": _int(0),
        "dev_limit": _int(0),
    },
    "model": {
        "char_embedding_dim": _int(1),
        "filters": (_filters, "a non-empty list of [width, number] pairs of positive integers"),
        "n_highway": _int(0),
        "activation": _choice("relu", "tanh"),
        "lstm_dim": _int(1),
        "projection_dim": _int(1),
        "n_layers": _int(1),
        "cell_clip": _optional_clip(),
        "proj_clip": _optional_clip(),
        "use_skip_connections": ((lambda v: isinstance(v, bool)), "true or false"),
        "dropout": _number(0.0, 0.99),
    },
    "vocab": {
        "max_size": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= 4)), "0 (every word) or an integer >= 4"),
        "min_count": _int(1),
        "softmax": _choice("auto", "full", "adaptive"),
    },
    "training": {
        "seed": _int(0),
        "batch_tokens": _int(1),
        "length_buckets": _int(0),
        "max_seconds": _number(0.0),
        "threads": _int(0),
        "max_steps": _int(1),
        "eval_every": _int(1),
        "checkpoint_every": _int(1),
        "optimizer": _choice("adam", "adagrad"),
        "learn_rate": _number(0.0, 1.0, open_low=True),
        "grad_clip": _number(0.0),
        "precision": _choice("fp32", "bf16"),
    },
}
# keys a config may leave out (older presets), with the value used then
DEFAULTS: Dict[Tuple[str, str], Any] = {("training", "max_seconds"): 0, ("training", "threads"): 0, ("training", "length_buckets"): 0,
                                   ("training", "precision"): "fp32"}


class ConfigError(ValueError):
    """A pretraining config that cannot be trained as written."""


def check_config(config: Dict[str, Any], path: Optional[object] = None) -> None:
    """Raise :class:`ConfigError` for the first problem found (see the module docstring)."""
    where = f"Config {path}" if path is not None else "The pretraining config"
    for section in config:
        if section not in SCHEMA:
            raise ConfigError(f"{where} has an unknown section [{section}]{_did_you_mean(section, SCHEMA)}; the sections are {', '.join(SCHEMA)}.")
    for section, rules in SCHEMA.items():
        if section not in config:
            raise ConfigError(f"{where} has no [{section}] section; start from configs/pretrain_tiny.cfg.")
        values = config[section]
        for key in values:
            if key not in rules:
                raise ConfigError(f"{where}: unknown setting {section}.{key}{_did_you_mean(key, rules)} (a misspelt --{section}.{key} override?).")
        missing = [k for k in rules if k not in values and (section, k) not in DEFAULTS]
        if missing:
            raise ConfigError(f"{where}: [{section}] lacks {', '.join(missing)}; see configs/pretrain_tiny.cfg.")
        for key, (check, allowed) in rules.items():
            if key not in values:
                values[key] = DEFAULTS[(section, key)]
                continue
            if not check(values[key]):
                raise ConfigError(f"{where}: {section}.{key} must be {allowed}, got {values[key]!r}.")


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
