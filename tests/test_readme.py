"""README's Python examples run as written (offline, with ../shared beside the checkout)."""
import re
import subprocess
import sys

import pytest

from .conftest import ROOT, SHARED, require_shared

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_block_runs(tmp_path, index):
    require_shared(SHARED / "reference" / "allennlp-elmo" / "options.json")
    code = BLOCKS[index]
    # the blocks use paths relative to the repository root and may write files: run a copy of the
    # paths from the root, writing into a temporary folder
    script = tmp_path / f"block{index}.py"
    script.write_text("import os\nos.chdir(os.environ['README_ROOT'])\n" + code.replace('nlp.to_disk("elmo_pipeline")', f'nlp.to_disk({str(tmp_path / "elmo_pipeline")!r})'))
    env = {"README_ROOT": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "SPACY_ELMO_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"README block {index}:\n{code}\n{result.stderr[-3000:]}"
