"""The package's layers (docs/design.md): imports point down or sideways, never up, never in a
cycle, and never out of the library into the benchmarks or the research runner."""

import ast
import os

from tests import REPO

# Lowest first. A module may import from its own layer or a lower one.
LAYERS = (
    ("byol_tf.config", "byol_tf.version", "byol_tf.platform"),
    ("byol_tf.core", "byol_tf.models", "byol_tf.augment"),
    ("byol_tf.data", "byol_tf.distributed"),
    ("byol_tf.evaluation",),
    ("byol_tf.training",),
    ("byol_tf.cli", "byol_tf.__init__"),
)
OUTSIDE = ("benchmarks", "research", "tools", "tests")


def _module_name(path: str) -> str:
    name = os.path.relpath(path, REPO)[: -len(".py")].replace(os.sep, ".")
    return (
        name[: -len(".__init__")]
        if name.endswith(".__init__") and name != "byol_tf.__init__"
        else name
    )


def _library_modules() -> dict[str, str]:
    modules = {}
    for root, dirs, files in os.walk(os.path.join(REPO, "byol_tf")):
        dirs[:] = [d for d in dirs if d not in ("configs", "__pycache__")]
        for f in files:
            if f.endswith(".py"):
                modules[_module_name(os.path.join(root, f))] = os.path.join(root, f)
    return modules


def _resolve(name: str, modules: dict[str, str]) -> str:
    """The module an imported name lives in: `byol_tf.data.pipeline` for `...pipeline.VIEWS`."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return "byol_tf.__init__" if name == "byol_tf" else name


def imports(path: str, modules: dict[str, str]) -> set[str]:
    """Every module `path` imports from the library or the outside folders, wherever the import
    statement is (function-level imports count), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(open(path).read())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "byol_tf":
                found.add(_resolve(name, modules))
            elif top in OUTSIDE:
                found.add(top)
    return found


def layer(module: str) -> int:
    matches = [
        (len(prefix), i)
        for i, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS and docs/design.md"
    return max(matches)[1]


def _graph() -> dict[str, set[str]]:
    modules = _library_modules()
    return {m: imports(p, modules) - {m} for m, p in modules.items()}


def test_imports_point_down_and_stay_in_the_library():
    wrong = []
    for module, deps in sorted(_graph().items()):
        for dep in sorted(deps):
            if dep in OUTSIDE:
                wrong.append(f"{module} imports {dep}/, which is outside the library")
            elif layer(dep) > layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {dep} (layer {layer(dep)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep in graph and dep not in state:
                visit(dep, stack + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_function_level_and_upward_imports(tmp_path):
    """The test would catch what it is for: an import inside a function, pointing up."""
    modules = {"byol_tf.training.trainer": "", "byol_tf.core.losses": ""}
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from byol_tf.evaluation import knn\n"
        "def f():\n    from byol_tf.training.trainer import Trainer\n"
    )
    assert imports(str(source), modules) == {"byol_tf.training.trainer"}
    assert layer("byol_tf.training.trainer") > layer("byol_tf.core.losses")
