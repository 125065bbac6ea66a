"""No import cycle among torchspectral's modules: the flow runs one way (statistics → formulas → metrics → report).

Every import statement counts, at module level or inside a function (a lazy import only hides a cycle), and so
do imports for type checking (a cycle there is still two modules that need each other). The implicit import of
a parent package is not an edge: every submodule has it, and the root package's re-exports depend on everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import torchspectral

PACKAGE = Path(torchspectral.__file__).parent
# pyproject maps the top-level kernels/ folder onto torchspectral.kernels.
KERNELS = PACKAGE.parent / "kernels"


def _modules() -> dict[str, Path]:
    found = {}
    for root, prefix in ((PACKAGE, ("torchspectral",)), (KERNELS, ("torchspectral", "kernels"))):
        for path in root.rglob("*.py"):
            parts = (*prefix, *path.relative_to(root).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(path: Path, module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from a import b` imports the module a.b when there is one, else the name b of module a.
            names.update(f"{source}.{alias.name}" for alias in node.names)
            names.add(source)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            # importlib.import_module("a.b") or f"a.{name}": the named module, or every module under the prefix.
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
            elif isinstance(argument, ast.JoinedStr) and isinstance(getattr(argument.values[0], "value", None), str):
                names.add(DYNAMIC + argument.values[0].value)
    return names


DYNAMIC = "*"  # marks a module-name prefix imported by importlib with a computed suffix


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def owners(name: str) -> set[str]:
        if name.startswith(DYNAMIC):
            return {m for m in modules if m.startswith(name[len(DYNAMIC) :])}
        found = owner(name)
        return {found} if found else set()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        targets = {t for name in _imported(path, module, path.name == "__init__.py") for t in owners(name)}
        # `from torchspectral.a import b` names the package torchspectral.a too: only the deepest module counts.
        deepest = {t for t in targets if t and not any(o != t and o.startswith(t + ".") for o in targets if o)}
        graph[module] = deepest - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "torchspectral.moments" in graph and "torchspectral.kernels.instance_score" in graph
    assert "torchspectral.stats" in graph["torchspectral.functional.cka"]
    # The kernels folder is mapped onto torchspectral.kernels; the fused Functions import their launchers.
    assert "torchspectral.kernels.rbf_mmd_sums" in graph["torchspectral.pairwise.chunked"]
    assert "torchspectral.kernels.operands" in graph["torchspectral.pairwise.precision"]


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_the_kernels_import_nothing_of_the_package_but_themselves() -> None:
    """kernels/ holds device code and launchers; the torch twins and the autograd Functions that pair a fused
    forward with the torch backward (torchspectral.pairwise) import the kernels, never the reverse."""
    graph = import_graph()
    kernels = {m for m in graph if m == "torchspectral.kernels" or m.startswith("torchspectral.kernels.")}
    assert "torchspectral.kernels.tiles" in kernels and "torchspectral.kernels.aot" in kernels
    outside = {m: sorted(t for t in graph[m] if t not in kernels) for m in kernels}
    assert not any(outside.values()), f"kernels importing the rest of torchspectral: {outside}"
