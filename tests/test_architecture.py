"""The layout holds: prm_core's layers import only downward, never dagster; assets never import orchestration;
no private Dagster API; no import cycles (function-level imports included); dvc.yaml's code deps cover every
stage's imports; prm_core modules stay short."""

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("prm_core", "assets", "orchestration")
# what each prm_core layer may import (besides itself): lower layers never import higher ones
ALLOWED = {
    "lineage": set(),
    "runtime": set(),
    "domains": {"lineage", "runtime"},
    "generation": {"domains", "lineage", "runtime"},
    "labels": {"generation", "domains", "lineage", "runtime"},
    "prm": {"generation", "domains", "lineage", "runtime"},
    "evaluation": {"prm", "labels", "generation", "domains", "lineage", "runtime"},
    "active": {"prm", "labels", "generation", "domains", "lineage", "runtime"},  # beside evaluation
    "compare": {"active", "evaluation", "prm", "labels", "generation", "domains", "lineage", "runtime"},  # the top
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = _modules()


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of the file (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return names


def first_party(path: Path) -> set[str]:
    return {m for m in imports_of(path) if m in MODULES}


def test_prm_core_layers_import_only_downward_and_never_dagster():
    wrong = []
    for name, path in MODULES.items():
        if not name.startswith("prm_core."):
            continue
        layer = name.split(".")[1]
        for m in imports_of(path):
            if m.split(".")[0] == "dagster":
                wrong.append(f"{name} imports dagster")
            elif m.startswith("prm_core.") and m.split(".")[1] not in ALLOWED[layer] | {layer}:
                wrong.append(f"{name} ({layer}) imports {m}")
    assert not wrong, "\n".join(wrong)


def test_assets_never_import_orchestration_and_no_private_dagster_api():
    wrong = [f"{n} imports {m}" for n, p in MODULES.items() for m in imports_of(p)
             if (n.startswith("assets") and m.startswith("orchestration")) or m.startswith("dagster._")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_among_first_party_modules():
    graph = {n: first_party(p) - {n} for n, p in MODULES.items()}
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in graph[n]:
            if state.get(m) == "open":
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(cycles)


def test_dvc_code_deps_cover_each_stage_imports():
    """Editing any prm_core module a stage's assets import (transitively) makes that stage stale."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = [d.rstrip("/") for d in stage["deps"] if not d.startswith("data/")]
        todo = [".".join(Path(d).with_suffix("").parts) for d in deps if d.startswith("assets/") and d.endswith(".py")]
        seen = set()
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += [x for x in first_party(MODULES[m]) if x.startswith(("prm_core", "assets"))]
        files = {MODULES[m].relative_to(ROOT).as_posix() for m in seen if m != "prm_core" and m != "assets"}
        uncovered = sorted(f for f in files if not any(f == d or f.startswith(d + "/") for d in deps))
        assert not uncovered, f"dvc stage {name} misses {uncovered}"


def test_prm_core_modules_stay_short():
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items() if n.startswith("prm_core")}
    assert all(v <= 320 for v in long.values()), {n: v for n, v in long.items() if v > 320}


def test_gpu_bench_and_the_prm_code_it_runs_need_no_polars_dagster_or_vllm():
    """The bare CUDA image has torch, transformers, accelerate and peft only."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('polars', 'pyarrow', 'dagster', 'vllm', 'upath', 'mlflow'): sys.modules[m] = None\n"
            "import prm_core.prm.discriminative, prm_core.prm.modeling_prm, prm_core.prm.encoding\n"
            "import prm_core.runtime.training, prm_core.generation.tokenizer\n"
            "sys.argv = ['prm_throughput', '--help']\n"
            "import runpy\n"
            "try:\n    runpy.run_path('bench/prm_throughput.py', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)


ASSET_LINES = 80


def _asset_functions(tree: ast.Module):
    """The module's functions decorated as Dagster assets (`@dg.asset(...)`, `@dg.multi_asset(...)`)."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                target = d.func if isinstance(d, ast.Call) else d
                if isinstance(target, ast.Attribute) and target.attr in ("asset", "multi_asset"):
                    yield node


def test_an_asset_module_imports_no_other_asset_module():
    """What assets share lives in assets/common/ (where a model lives, what it recorded, MLflow): never in a stage."""
    stages = {n for n in MODULES if n.startswith("assets.") and not n.startswith("assets.common")}
    wrong = [f"{n} imports {m}" for n in sorted(stages) for m in first_party(MODULES[n]) if m in stages and m != n]
    assert not wrong, "\n".join(wrong)


def test_every_asset_function_is_short():
    """An asset reads, calls the library, writes and records: at most 80 lines, decorator aside."""
    long = {}
    for name, path in MODULES.items():
        if name.startswith("assets."):
            for fn in _asset_functions(ast.parse(path.read_text())):
                lines = fn.end_lineno - fn.lineno + 1
                if lines > ASSET_LINES:
                    long[f"{name}.{fn.name}"] = lines
    assert not long, long


def test_bench_and_prm_core_never_import_tests():
    """Tests import the code, never the other way round (string import hooks included)."""
    files = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "prm_core").rglob("*.py")]
    wrong = [f"{f.relative_to(ROOT)} imports {m}" for f in files for m in imports_of(f) if m.split(".")[0] == "tests"]
    wrong += [f"{f.relative_to(ROOT)} names tests. in a string" for f in files
              for node in ast.walk(ast.parse(f.read_text()))
              if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("tests.")]
    assert not wrong, "\n".join(wrong)


def test_a_test_module_imports_no_other_test_module():
    """Shared fixtures and helpers live in tests/conftest.py or tests/support/, never in another test module."""
    wrong = [f"{f.relative_to(ROOT)} imports {m}" for f in (ROOT / "tests").rglob("test_*.py") for m in imports_of(f)
             if m.startswith("tests.") and m.split(".")[-1].startswith("test_")]
    assert not wrong, "\n".join(wrong)
