"""The wheel a non-editable install (a GPU worker, a container) gets holds every package and data file."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    tree = tmp_path / "tree"  # a copy: a build/ folder left in the checkout would hide what is missing
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for part in ("vidbatch", "flows", "tasks", "providers"):
        shutil.copytree(ROOT / part, tree / part, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(tree)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("vidbatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {f"vidbatch/{path.relative_to(ROOT / 'vidbatch').as_posix()}" for path in (ROOT / "vidbatch").rglob("*")
               if path.is_file() and path.suffix in (".py", ".j2", ".toml") and "__pycache__" not in path.parts}
    for folder in ("flows", "tasks", "providers"):  # installed as vidbatch.<folder>
        sources |= {f"vidbatch/{folder}/{path.name}" for path in (ROOT / folder).glob("*.py")}
    missing = sorted(sources - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "vidbatch/ledger_store/migrations/versions/0002_open_reservations.py" in names
