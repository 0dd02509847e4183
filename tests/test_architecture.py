"""The import contract, read from the source (function-level imports included):

  pure core  -> nothing heavy, no IO library, none of the layers above it
  edges      (media, storage, inputs, the ledger store, review IO, the sandbox, clip scoring: its model
             and optical flow) -> the core and each other
  providers  -> the core and the edges, never tasks or flows
  tasks      -> never flows
  flows      -> never the CLI
  the CLI    -> anything (it is the outermost layer: vidbatch.cli and its commands' modules)
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"vidbatch": ROOT / "vidbatch", "vidbatch.tasks": ROOT / "tasks", "vidbatch.flows": ROOT / "flows",
            "vidbatch.providers": ROOT / "providers"}
EDGES = {"vidbatch.media", "vidbatch.storage", "vidbatch.inputs", "vidbatch.ledger_store", "vidbatch.review_io",
         "vidbatch.sandbox", "vidbatch.cli", "vidbatch.scorer", "vidbatch.motion"}
HEAVY = {"prefect", "torch", "diffusers", "transformers", "boto3", "botocore", "ffmpeg", "av", "fastapi", "uvicorn",
         "rich", "typer", "openai", "httpx", "sqlalchemy", "alembic", "cv2", "PIL", "tokenizers"}
LAYERS = ("vidbatch.tasks", "vidbatch.flows", "vidbatch.providers", "vidbatch.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            if package == "vidbatch" and parts[0] in ("tasks", "flows", "providers"):
                continue
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(module: str) -> str:
    for layer in ("vidbatch.tasks", "vidbatch.flows", "vidbatch.providers"):
        if _within(module, [layer]):
            return layer
    return "edge" if _within(module, EDGES) else "core"


FORBIDDEN = {
    "core": lambda name: name.split(".")[0] in HEAVY or _within(name, [*LAYERS, *EDGES]),
    "edge": lambda name: _within(name, ["vidbatch.tasks", "vidbatch.flows"]),
    "vidbatch.providers": lambda name: _within(name, ["vidbatch.tasks", "vidbatch.flows", "vidbatch.cli"]),
    "vidbatch.tasks": lambda name: _within(name, ["vidbatch.flows", "vidbatch.cli"]),
    "vidbatch.flows": lambda name: _within(name, ["vidbatch.cli"]),
}


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_keeps_to_its_layer(module):
    path = _modules()[module]
    layer = "edge" if module == "vidbatch.cli" else _layer(module)
    if _within(module, ["vidbatch.cli"]):  # the CLI (each of its commands' modules) is the outermost edge
        return
    bad = sorted(name for name in _imports(path) if FORBIDDEN[layer](name))
    assert not bad, f"{module} ({layer}) imports {bad}"


def test_the_contract_sees_every_layer():
    layers = {_layer(m) for m in _modules()}
    assert layers == {"core", "edge", "vidbatch.tasks", "vidbatch.flows", "vidbatch.providers"}
    assert "vidbatch.planner" in _modules() and "vidbatch.tasks.generate" in _modules()


def test_a_violation_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from prefect import flow\n    import vidbatch.tasks.generate\n")
    assert {n for n in _imports(bad) if FORBIDDEN["core"](n)} == {"prefect", "prefect.flow", "vidbatch.tasks.generate"}


def test_the_wan_levers_import_without_polars_pyav_or_prefect():
    """bench/wan_speed.py runs on a lent GPU whose Python has torch but not polars, PyAV or prefect
    (infra/device-wheelhouse.sh carries only diffusers and pydantic): its imports must stay light."""
    import subprocess
    import sys

    code = ("import sys\nimport vidbatch.providers.wan_levers, vidbatch.providers.wan_tiny, vidbatch.route_settings\n"
            "print(sorted(m for m in ('polars', 'av', 'prefect', 'boto3', 'sqlalchemy', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _is_kind(name: str) -> bool:
    """A provider kind's own module (vidbatch.providers.NAME), not the contract (vidbatch.providers)."""
    return name.startswith("vidbatch.providers.") and name.split(".")[2] in _kind_modules()


def _kind_modules() -> set[str]:
    return {path.stem for path in (ROOT / "providers").glob("*.py") if path.stem != "__init__"}


@pytest.mark.parametrize("module", sorted(m for m in _modules() if not _is_kind(m)))
def test_the_core_imports_no_kind(module):
    """Kinds are plugins, whether vidbatch ships them or not: outside providers/, nothing imports
    one (vidbatch.kinds loads them by name from BUILT_IN_KINDS and the entry points)."""
    bad = sorted(name for name in _imports(_modules()[module]) if _is_kind(name))
    assert not bad, f"{module} imports the provider kind module(s) {bad}"


def test_the_kind_contract_catches_a_kind_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vidbatch.providers.wan import lora_identity\n    import vidbatch.providers\n")
    assert sorted(n for n in _imports(bad) if _is_kind(n)) == ["vidbatch.providers.wan",
                                                               "vidbatch.providers.wan.lora_identity"]
