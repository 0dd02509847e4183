"""What a newcomer reads, per concern: lines, functions, the longest function, and the functions
over 80 lines, for this tree against an earlier revision (default a86a36b^, before issue 30).

Both trees are laid out by the same `ruff format` (120 columns) before counting, so a layout change
is not counted as a change of code. Lines: physical lines of the formatted modules, docstrings and
comments included (what a reader scrolls through). Functions: every def (methods and nested ones).
Figures are printed for both and as ratios, now / before.
Run: .venv/bin/python bench/code_shape.py [--before REV]
"""

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("vidbatch", "flows", "tasks", "providers")
# concern -> module paths (prefixes) in the tree; the first match wins
CONCERNS = {
    "money: caps, ledger, reservations": ("vidbatch/micros.py", "vidbatch/money.py", "vidbatch/earmarks.py",
                                           "vidbatch/refusals.py", "vidbatch/ledger.py", "vidbatch/ledger_store/",
                                           "tasks/reservation.py", "tasks/ledger_io.py", "vidbatch/measured.py"),
    "planning and routing": ("vidbatch/planner.py", "vidbatch/routing.py", "vidbatch/pricing.py", "vidbatch/runs.py",
                             "vidbatch/catalog.py", "vidbatch/policy", "vidbatch/route_settings.py",
                             "vidbatch/kinds.py", "vidbatch/inputs.py"),
    "providers (the four kinds)": ("providers/",),
    "pipeline tasks and run context": ("tasks/",),
    "flows": ("flows/",),
    "CLI": ("vidbatch/cli/",),
    "sandboxes (loopback services)": ("vidbatch/sandbox/",),
    "media, QA, storage, reports, the rest": ("vidbatch/",),
}


def checkout(rev: str, into: Path) -> Path:
    """The tree of `rev` (HEAD's working tree for "WORKTREE"), formatted."""
    into.mkdir(parents=True)
    if rev == "WORKTREE":
        subprocess.run(["cp", "-r", *(str(REPO / f) for f in FOLDERS), str(into)], check=True)
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *FOLDERS], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    ruff = Path(sys.executable).parent / "ruff"
    subprocess.run([str(ruff), "format", "--quiet", "--isolated", "--line-length", "120", str(into)], check=True)
    return into


def shape(tree: Path) -> dict[str, dict]:
    out = {name: {"modules": 0, "lines": 0, "functions": 0, "longest": (0, ""), "over_80": 0} for name in CONCERNS}
    for path in sorted(p for f in FOLDERS for p in (tree / f).rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        if "/migrations/" in rel:
            continue
        concern = next(name for name, prefixes in CONCERNS.items() if rel.startswith(prefixes))
        text = path.read_text()
        figures = out[concern]
        figures["modules"] += 1
        figures["lines"] += text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                figures["functions"] += 1
                figures["over_80"] += length > 80
                if length > figures["longest"][0]:
                    figures["longest"] = (length, f"{rel}:{node.name}")
    return out


def main(before: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        old = shape(checkout(before, Path(work) / "before"))
        new = shape(checkout("WORKTREE", Path(work) / "now"))
    print(f"before: {before}; now: this working tree; both laid out by ruff format (120 columns)")
    print("| concern | modules | lines (now / before) | functions | lines per function | longest function "
          "(now; before) | over 80 lines |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name in CONCERNS:
        a, b = old[name], new[name]
        per_a = a["lines"] / max(a["functions"], 1)
        per_b = b["lines"] / max(b["functions"], 1)
        print(f"| {name} | {a['modules']} → {b['modules']} | {a['lines']:,} → {b['lines']:,} "
              f"({b['lines'] / max(a['lines'], 1):.2f}x) | {a['functions']} → {b['functions']} | "
              f"{per_a:.1f} → {per_b:.1f} | {b['longest'][0]} ({b['longest'][1]}); {a['longest'][0]} "
              f"({a['longest'][1]}) | {a['over_80']} → {b['over_80']} |")
    total = {k: sum(v[k] for v in old.values()) for k in ("lines", "functions", "over_80")}
    now = {k: sum(v[k] for v in new.values()) for k in ("lines", "functions", "over_80")}
    print(f"| all | | {total['lines']:,} → {now['lines']:,} ({now['lines'] / total['lines']:.2f}x) | "
          f"{total['functions']} → {now['functions']} | | | {total['over_80']} → {now['over_80']} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[args.index("--before") + 1] if "--before" in args else "a86a36b^")
