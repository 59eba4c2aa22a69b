"""``python -m spacy_elmo quantize INPUT OUTPUT``: a copy of a pipeline whose biLM keeps its LSTM weights in int8 only.

``precision = "int8"`` in a pipeline runs the LSTM's products in int8 but keeps
the float32 weights beside them, so the pipeline can be saved exactly and set
back to ``"fp32"``: its weights' memory grows instead of shrinking. For deployment,
this command saves a copy whose biLM holds the LSTM weights in int8 only (per
output channel, as ``precision = "int8"`` packs them; the token layer stays
float32), and the projections' in bfloat16 too (``"int8"`` runs them in bf16
where the CPU has native bf16): 30% of the LSTM's float32 bytes on disk and in
memory for the original shape, the same outputs as the input pipeline with
``precision = "int8"``, bit for bit.
The copy runs only in int8 on the CPU (its config says ``precision =
"int8"``); for fp32, bf16 or a GPU use the input pipeline.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a saved pipeline folder with an elmo component (spacy.load-able)")
    parser.add_argument("output", type=Path, help="folder to write the int8 copy to")


def precision_paths(config: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """Config paths (``("components", NAME, "model", ...)``) of every ``spacy-elmo.ElmoTok2Vec`` block."""
    found = []

    def walk(node: Any, path: Tuple[str, ...]) -> None:
        if isinstance(node, dict):
            if str(node.get("@architectures", "")).startswith("spacy-elmo.ElmoTok2Vec"):
                found.append(path)
            for key, value in node.items():
                walk(value, path + (key,))

    walk(config.get("components", {}), ("components",))
    return found


def quantize_pipeline(input_path: Path, output_path: Path) -> Dict[str, int]:
    """Load ``input_path``, set every biLM in it to int8 without float32 LSTM weights, save to
    ``output_path``; returns the biLMs' LSTM weight bytes before and after."""
    import spacy
    import torch

    from ..bilm import BiLM
    from ..bilm.precision import INT8, INT8_BF16, int8_weights
    from ..errors import Errors
    from ..layers.bilm_wrapper import get_torch_bilm

    if not (input_path / "config.cfg").exists():
        raise ValueError(f"{input_path} is not a saved spaCy pipeline (no config.cfg): give the folder nlp.to_disk() wrote.")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"Write the int8 copy to another folder than {input_path}: the input stays the exact pipeline.")
    paths = precision_paths(dict(spacy.util.load_config(input_path / "config.cfg", interpolate=False)))
    if not paths:
        raise ValueError(Errors.E047.format(what="pipeline", value=str(input_path), why="it has no spacy-elmo.ElmoTok2Vec in any component: nothing to quantize"))
    overrides: Dict[str, Any] = {}
    for path in paths:
        node = overrides
        for key in path:
            node = node.setdefault(key, {})
        node["precision"] = "int8"
    nlp = spacy.load(input_path, config=overrides)
    before = after = 0
    for _, pipe in nlp.components:
        nodes = pipe.model.walk() if hasattr(pipe, "model") else []
        for bilm in (get_torch_bilm(node) for node in nodes if node.name == "elmo_bilm"):
            if not isinstance(bilm, BiLM):
                continue
            before += sum(p.numel() * 4 for p in int8_weights(bilm))
            bilm.set_precision("int8", keep_float=False)
            after += sum(torch.ops.quantized.linear_unpack(q)[0].numel() for p in int8_weights(bilm) for q in getattr(p, INT8))
            after += sum(getattr(p, INT8_BF16).numel() * 2 for p in int8_weights(bilm) if hasattr(p, INT8_BF16))
    nlp.to_disk(output_path)
    return {"float32_bytes": before, "int8_bytes": after}


def run(args: argparse.Namespace) -> int:
    sizes = quantize_pipeline(args.input, args.output)
    print(
        f"Saved {args.output}: the biLM's LSTM weights in int8 only (the projections in bf16 too), {sizes['int8_bytes'] / 2**20:.1f} MiB "
        f"(float32: {sizes['float32_bytes'] / 2**20:.1f} MiB). It runs with precision 'int8' on the CPU; "
        f"for fp32 / bf16 / GPU use {args.input}.",
        file=sys.stderr,
    )
    return 0
