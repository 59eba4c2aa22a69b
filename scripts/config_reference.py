"""Write docs/config_reference.md: every registered name of spacy-elmo with its settings.

    python scripts/config_reference.py [--check]

Read from the code (setup.cfg's entry points, each function's signature and the
``name: meaning`` lines of its docstring), so the reference cannot drift from it:
``tests/scripts/test_config_reference.py`` fails when the committed file differs
from what this script writes, or when a setting has no description.
"""
import argparse
import configparser
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "config_reference.md"
GROUPS = [
    ("spacy_factories", "Pipeline component (`nlp.add_pipe(NAME, config={...})`, `[components.NAME]`)"),
    ("spacy_architectures", "Architectures (`@architectures`)"),
    ("spacy_span_getters", "Span getters (`@span_getters`)"),
    ("thinc_model_loaders", "Weight loaders (`@model_loaders`, in `[initialize.components.elmo.loader]`)"),
]
SKIP = {"nlp", "name"}  # given by spaCy to every factory


def entry_points() -> Dict[str, List[Tuple[str, str]]]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    section = parser["options.entry_points"]
    return {
        group: [tuple(part.strip() for part in line.split("=", 1)) for line in section[group].strip().splitlines()]
        for group in section
    }


def described(doc: str) -> Dict[str, str]:
    """``{setting: meaning}`` from docstring lines ``name: text`` / ``a / b: text`` (continued when indented deeper)."""
    out: Dict[str, str] = {}
    current: List[str] = []
    doc = inspect.cleandoc(doc or "")
    for line in doc.splitlines():
        match = re.match(r"^([a-z_][a-z0-9_]*(?: / [a-z_][a-z0-9_]*)*): (.+)$", line)
        if match:
            current = [name.strip() for name in match.group(1).split("/")]
            for name in current:
                out[name] = match.group(2).strip()
        elif current and line.startswith("    ") and line.strip():
            for name in current:
                out[name] += " " + line.strip()
        else:
            current = []
    return out


def _type(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return re.sub(r"\b(typing|thinc\.model|thinc\.types|spacy\.tokens\.doc)\.", "", text)


def _default(value, factory_defaults: Dict) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    return f"`{value!r}`"


def rows(func, factory_defaults: Dict = None, earlier: Dict[str, str] = None) -> List[Tuple[str, str, str, str]]:
    """One row per setting; a setting a newer version does not describe again has its earlier version's meaning."""
    meanings = {**(earlier or {}), **described(func.__doc__)}
    out = []
    for param in inspect.signature(func).parameters.values():
        if param.name in SKIP:
            continue
        if factory_defaults is not None and param.name in factory_defaults:
            default = "see below" if param.name == "model" else f"`{factory_defaults[param.name]!r}`"
        else:
            default = _default(param.default, {})
        out.append((param.name, _type(param.annotation), default, meanings.get(param.name, "")))
    return out


def render() -> Tuple[str, List[str]]:
    """The markdown, and the settings that have no description."""
    points = entry_points()
    lines = [
        "# Configuration reference",
        "",
        "Every registered name of spacy-elmo and its settings, generated from the code by",
        "`python scripts/config_reference.py` (a test fails when this file is out of date).",
        "Registered names are versioned and never change once released; a new behaviour gets a new version.",
        "",
    ]
    missing: List[str] = []
    known: Dict[str, Dict[str, str]] = {}  # name without its version -> setting meanings so far
    for group, title in GROUPS:
        lines += [f"## {title}", ""]
        for name, target in points.get(group, []):
            module, attr = target.split(":")
            func = getattr(importlib.import_module(module), attr)
            factory_defaults = None
            if group == "spacy_factories":
                import spacy

                factory_defaults = spacy.blank("en").get_factory_meta(name).default_config
            summary = inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " ")
            lines += [f"### `{name}`", "", summary, "", "| setting | type | default | meaning |", "|---|---|---|---|"]
            base = name.rsplit(".v", 1)[0]
            for setting, kind, default, meaning in rows(func, factory_defaults, known.get(base)):
                if not meaning:
                    missing.append(f"{name}: {setting}")
                cell = lambda text: text.replace("|", "\\|")  # noqa: E731
                lines.append(f"| `{setting}` | {cell(f'`{kind}`' if kind else '')} | {cell(default)} | {cell(meaning)} |")
            known[base] = {**known.get(base, {}), **described(func.__doc__)}
            if factory_defaults is not None and "model" in factory_defaults:
                model = factory_defaults["model"]
                lines += ["", "Default `model`:", "", "```ini", "[components.elmo.model]"]
                lines += [f"{key} = {value!r}" if not isinstance(value, dict) else f"# [{key}] ..." for key, value in model.items()]
                lines += ["```"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n", missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config_reference.md is out of date")
    args = parser.parse_args(argv)
    text, missing = render()
    if missing:
        print("Settings without a description in their docstring:\n  " + "\n  ".join(missing), file=sys.stderr)
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text(encoding="utf8") != text:
            print(f"{OUTPUT} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 1 if missing else 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf8")
    print(f"Wrote {OUTPUT}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
