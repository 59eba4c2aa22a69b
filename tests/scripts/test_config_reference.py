"""docs/config_reference.md is generated from the code and up to date; every setting is described."""
import sys

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import config_reference  # noqa: E402

sys.path.pop(0)


def test_reference_is_current_and_complete():
    text, missing = config_reference.render()
    assert missing == [], f"settings without a description: {missing}"
    committed = (ROOT / "docs" / "config_reference.md").read_text(encoding="utf8")
    assert committed == text, "docs/config_reference.md is out of date: run python scripts/config_reference.py"


def test_every_registered_name_is_in_it():
    text, _ = config_reference.render()
    for group, names in config_reference.entry_points().items():
        if group == "console_scripts" or group == "spacy_cli":
            continue
        for name, _ in names:
            assert f"### `{name}`" in text


def test_docstring_settings_are_read_with_continuations():
    doc = """Summary.

    a / b: first line
        continued.
    c: other.
    """
    assert config_reference.described(doc) == {"a": "first line continued.", "b": "first line continued.", "c": "other."}
