import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import captioning, report, retrieval

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", [captioning, retrieval, report])
def test_docstring_examples_run(module):
    results = doctest.testmod(module, verbose=False)
    assert results.failed == 0
    assert results.attempted > 0


def test_package_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import evaluation.captioning, evaluation.retrieval, evaluation.report\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
