"""Each top-level import name of the project resolves to this repository in the installed venv.

The names are generic (`config`, `storage`, `supervision`, ...): a distribution of the same
name installed beside the project would shadow it. The check runs in a fresh interpreter of the
same environment, isolated (-I) and started elsewhere, so that neither the working directory
nor pytest's own sys.path entries can hide what an installed `quantumvault` would import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.setup_cfg import ROOT, top_level_names

_ORIGINS = """
import importlib.util, json, sys
specs = {name: importlib.util.find_spec(name) for name in sys.argv[1:]}
print(json.dumps({name: spec.origin if spec else None for name, spec in specs.items()}))
"""


def test_the_names_are_the_packages_and_modules_of_the_tree() -> None:
    names = top_level_names()
    assert "runtime" in names and "storage" in names
    for name in names:
        assert (ROOT / name / "__init__.py").is_file() or (ROOT / f"{name}.py").is_file(), name


def test_every_top_level_name_resolves_to_this_repository(tmp_path: Path) -> None:
    names = top_level_names()
    result = subprocess.run([sys.executable, "-I", "-c", _ORIGINS, *names], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=True)
    origins = json.loads(result.stdout)
    elsewhere = {name: origin for name, origin in origins.items()
                 if origin is None or not Path(str(origin)).resolve().is_relative_to(ROOT)}
    assert elsewhere == {}, f"not resolved to {ROOT} (reinstall with scripts/install.sh)"
