"""The package structure, checked from the code's own imports (parsed with ast, never executed).

* no import cycle between project modules, counting imports made inside functions;
* an import of a project module inside a function is not allowed at all (only heavy optional
  third-party dependencies are imported lazily);
* ``strategies/`` and ``backbones/`` import nothing of ``bench`` beyond the kernel ``bench.core``;
* every import goes down (or sideways) the layers of docs/architecture.md, never up;
* ``bench/__init__.py`` imports nothing; every sub-package of ``bench`` says what it owns;
* no file of the project refers to the shared folder of the team's development workplace;
* every room one job: no module over 400 lines (the adaptive sampler's file: 400 lines of code,
  its long module docstring not counted), every module says its job in a docstring;
* the report and the analysis import no training, evaluation or experiment code;
* one owner: the training loss (the MSE of the prediction) is written once, in
  ``bench.core.process``, and the process is constructed once, in ``bench.core.processes``.

The rules are documented in docs/architecture.md.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "strategies", "backbones")
KERNEL = "bench.core"
# The layers of docs/architecture.md, bottom first; a module may import its own layer and below.
# Commands (``*.__main__``, ``bench.tools``, the ``python -m bench.<tool>`` entry points) sit on top.
LAYERS = (
    ("bench.core", "bench"),
    ("strategies", "backbones", "bench.data"),
    ("bench.config", "bench.rundir", "bench.labels"),
    ("bench.train",),
    ("bench.evaluation",),
    ("bench.experiment",),
    ("bench.sweep.spec", "bench.sweep.check", "bench.launch"),
    ("bench.analysis",),
    ("bench.report",),
    ("bench.tools", "bench.perf", "bench.sample", "bench.strategies", "bench.latent",
     "bench.sweep", "bench.cli", "bench.eval"),
)


# ---------------------------------------------------------------------------- the import graph
def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every module of ``packages`` below ``root``."""
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` resolves to (the longest existing prefix), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return None


def imports(modules: dict[str, Path]) -> list[tuple[str, str, int, bool]]:
    """(importer, imported project module, line, inside a function) for every import."""
    edges = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        funcs = [n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
        nested = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # ``from a.b import c``: c may be a module (a.b.c) or a name of a.b
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                target = _target(name, modules)
                if target is not None and target != mod:
                    edges.append((mod, target, node.lineno, id(node) in nested))
    return edges


def cycles(edges) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def edges():
    return imports(module_files(REPO))


# ---------------------------------------------------------------------------- the rules
def test_no_import_cycles(edges):
    assert cycles(edges) == []


def test_no_project_import_inside_a_function(edges):
    lazy = [f"{a} -> {b} (line {line})" for a, b, line, inside in edges if inside]
    assert lazy == [], "import these at the top of the module:\n" + "\n".join(lazy)


def test_strategies_and_backbones_import_only_the_kernel(edges):
    bad = [f"{a} -> {b}" for a, b, *_ in edges
           if a.split(".")[0] in ("strategies", "backbones") and b.split(".")[0] == "bench"
           and not (b == KERNEL or b.startswith(KERNEL + "."))]
    assert bad == []


def layer(module: str) -> int:
    """The layer of a module: commands on top, else the longest matching prefix."""
    if module.endswith(".__main__"):
        return len(LAYERS) - 1
    best, rank = "", None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, rank = p, i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS and the docs"
    return rank


def test_imports_never_go_up_a_layer(edges):
    up = [f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)})" for a, b, *_ in edges
          if layer(a) < layer(b)]
    assert up == []


def test_the_package_root_imports_nothing_and_every_package_says_what_it_owns():
    root = ast.parse((REPO / "bench" / "__init__.py").read_text())
    assert not [n for n in ast.walk(root) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert any(isinstance(n, ast.Assign) and n.targets[0].id == "__version__" for n in root.body)
    for init in (REPO / "bench").rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: no docstring"


def test_no_reference_to_the_workplace_shared_folder():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    needle = "../" + "shared"                  # spelled in two parts so this file passes
    hits = []
    for name in files:
        path = REPO / name
        if path.is_file() and path.suffix not in (".png", ".pdf", ".npz", ".pt"):
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            hits += [f"{name}:{i}" for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    assert hits == []


MAX_LINES = 400
DOCSTRING_EXEMPT = {"strategies.adaptive_beta"}     # its long docstring is the method's record


def code_lines(path: Path) -> int:
    """Lines of the file without its module docstring."""
    text = path.read_text()
    tree = ast.parse(text)
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
        getattr(tree.body[0], "value", None), ast.Constant) else None
    n = len(text.splitlines())
    return n - (doc.end_lineno - doc.lineno + 1 if doc else 0)


def test_no_module_over_400_lines_and_each_says_its_job():
    too_long, silent = [], []
    for mod, path in module_files(REPO).items():
        n = code_lines(path) if mod in DOCSTRING_EXEMPT else len(path.read_text().splitlines())
        if n > MAX_LINES:
            too_long.append(f"{mod}: {n} lines")
        if path.read_text().strip() and not ast.get_docstring(ast.parse(path.read_text())):
            silent.append(mod)
    assert too_long == [], "split these along their seams:\n" + "\n".join(too_long)
    assert silent == [], "say the module's one job in a docstring:\n" + "\n".join(silent)


def reachable(edges, roots: list[str]) -> set[str]:
    """Every project module the ``roots`` import, directly or through others."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in edges:
        graph.setdefault(a, set()).add(b)
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return seen


TRAINING_STACK = ("bench.train", "bench.evaluation", "bench.experiment")


def test_the_report_and_the_analysis_import_no_training_code(edges):
    roots = [m for m in module_files(REPO) if m.split(".")[:2] in (["bench", "report"],
                                                                  ["bench", "analysis"])]
    assert "bench.report.__main__" in roots and "bench.analysis.load" in roots
    bad = sorted(m for m in reachable(edges, roots)
                 if any(m == p or m.startswith(p + ".") for p in TRAINING_STACK))
    assert bad == []


def test_the_report_imports_no_training_code_when_run():
    """The same, as Python sees it: what ``import bench.report.build, bench.analysis.load``
    loads."""
    code = ("import sys, bench.report.build, bench.report.__main__, bench.analysis.load; "
            "print(sorted(m for m in sys.modules if m.startswith(%r)))" % (TRAINING_STACK,))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


# The training loss written out (an MSE of prediction and target): only bench.core.process.
LOSS_FORMS = re.compile(r"mse_loss|mean_flat\(\s*\(|\*\*\s*2\s*\)\.mean\(\)")


def code_only(text: str) -> list[str]:
    """The lines of ``text`` with strings, docstrings and comments blanked out."""
    lines = text.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT):
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                a = c0 if r == r0 else 0
                b = c1 if r == r1 else len(lines[r - 1])
                lines[r - 1] = lines[r - 1][:a] + " " * (b - a) + lines[r - 1][b:]
    return lines


def test_the_training_loss_and_the_process_construction_each_exist_once():
    loss_sites, built = [], []
    for mod, path in module_files(REPO).items():
        for i, code in enumerate(code_only(path.read_text()), 1):
            if LOSS_FORMS.search(code):
                loss_sites.append(f"{mod}:{i}")
            if re.search(r"(?<!class )\bDDPM\(|PROCESSES\[", code):
                built.append(mod)
    assert [s.split(":")[0] for s in loss_sites] == ["bench.core.process"], loss_sites
    assert built == ["bench.core.processes"], built


def test_a_second_loss_or_construction_is_found(tmp_path):
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "x.py").write_text('"""mean_flat((a - b) ** 2)"""\n'
                              "loss = mean_flat((noise - eps) ** 2)\nd = DDPM('linear', 10)\n")
    lines = code_only((pkg / "x.py").read_text())
    assert not LOSS_FORMS.search(lines[0])               # a docstring names it: not a second
    assert LOSS_FORMS.search(lines[1]) and re.search(r"(?<!class )\bDDPM\(", lines[2])
    assert not re.search(r"(?<!class )\bDDPM\(", "class DDPM(Process):")


# ---------------------------------------------------------------------------- the checker bites
def test_a_planted_cycle_and_a_lazy_import_are_found(tmp_path):
    """A temporary package with a → b → c → a (the last one inside a function) is a cycle."""
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""x"""\n')
    (pkg / "a.py").write_text("from bench import b\n")
    (pkg / "b.py").write_text("import bench.c as c\n")
    (pkg / "c.py").write_text("def f():\n    from bench.a import g\n")
    (pkg / "d.py").write_text("from bench import a\n")
    found = imports(module_files(tmp_path, ("bench",)))
    assert cycles(found) == [["bench.a", "bench.b", "bench.c"]]
    assert [(a, b) for a, b, _, inside in found if inside] == [("bench.c", "bench.a")]
    assert cycles([e for e in found if e[0] != "bench.c"]) == []


def test_an_upward_import_is_found():
    """The trainer importing evaluation, or the kernel importing config, goes up a layer."""
    assert layer("bench.train.trainer") < layer("bench.evaluation.callbacks")
    assert layer("bench.core.io") < layer("bench.config")
    assert layer("bench.sweep.__main__") == layer("bench.tools.perf") == len(LAYERS) - 1
