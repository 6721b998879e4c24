"""The package's structure, read from its source (nothing imported): each role file imports
only what its role may (docs/architecture.md, "Layout"), routes only route, no import cycle
among serve_app's modules (imports inside functions included), imports inside functions
only where they keep a heavy library out of a process, and no module over 400 lines."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "serve_app"
CAPABILITIES = ("embeddings", "ocr", "solver", "store")
MODEL_LIBRARIES = {"torch", "transformers", "doctr", "z3", "highspy", "rapidocr", "onnxruntime"}
WEB = {"fastapi", "starlette"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@dataclass(frozen=True)
class Import:
    target: str  # a serve_app module where the name is one, else the imported name
    in_function: bool
    line: int

    @property
    def top(self) -> str:
        return self.target.partition(".")[0]

    @property
    def own(self) -> bool:
        return self.top == "serve_app"


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """What ``module`` imports when it runs: at import time and inside its functions; not
    what only a type checker reads (``if TYPE_CHECKING:``)."""
    found: list[Import] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{module}:{child.lineno}: a relative import"
                base = child.module or ""
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(sub if sub in MODULES else base, in_function, child.lineno))
            functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            walk(child, in_function or isinstance(child, functions))

    walk(ast.parse(MODULES[module].read_text()), False)
    return tuple(found)


def runs(target: str) -> list[str]:
    """The serve_app modules that importing ``target`` runs: its packages' ``__init__`` too."""
    parts = target.split(".")
    return [m for m in (".".join(parts[:n]) for n in range(1, len(parts) + 1)) if m in MODULES]


def at_import(module: str) -> set[str]:
    """Every name imported when ``module`` is imported: its own top-level imports and those of
    the serve_app modules they run, transitively."""
    seen, names, todo = set(), set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imp in imports_of(current):
            if not imp.in_function:
                names.add(imp.target)
                todo.extend(runs(imp.target) if imp.own else [])
    return names


def tops(names: set[str]) -> set[str]:
    return {n.partition(".")[0] for n in names}


def role_files(role: str) -> list[str]:
    return [f"serve_app.{c}.{role}" for c in CAPABILITIES if f"serve_app.{c}.{role}" in MODULES]


RUNTIMES = [
    m
    for m in MODULES
    if m.rpartition(".")[2] in ("runtime", "torch_encoder", "search", "db")
    or m.endswith("_runtime")
]


@pytest.mark.parametrize("module", role_files("protocol"))
def test_protocol_files_are_schemas_only(module: str):
    allowed = {"pydantic", "__future__"} | set(sys.stdlib_module_names)
    assert {i.top for i in imports_of(module)} <= allowed


@pytest.mark.parametrize("module", role_files("routes"))
def test_routes_only_route(module: str):
    """Routes and their OpenAPI metadata: a router, constants, and route functions that take
    the request, call the capability's ``serving`` and return (no logic of their own)."""
    capability = module.split(".")[1]
    allowed_own = {f"serve_app.{capability}.{m}" for m in ("protocol", "serving", "images")}
    own = {i.target for i in imports_of(module) if i.own}
    assert own <= allowed_own | {"serve_app.responses"}, own - allowed_own
    assert {i.top for i in imports_of(module) if not i.own} <= WEB | {"__future__"}
    tree = ast.parse(MODULES[module].read_text())
    for node in tree.body[1:]:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign)):
            continue
        assert isinstance(node, ast.AsyncFunctionDef), f"{module}:{node.lineno}: not a route"
        verbs = {"get", "post", "put", "delete", "patch"}
        decorators = [d.func.attr for d in node.decorator_list if isinstance(d, ast.Call)]
        assert any(v in verbs for v in decorators), f"{module}: {node.name} is not a route"
        body = node.body[1:] if ast.get_docstring(node) else node.body
        logic = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.AsyncFor, ast.AsyncWith)
        assert len(body) <= 2 and not any(isinstance(s, logic) for s in body), node.name


@pytest.mark.parametrize("module", role_files("serving"))
def test_serving_is_the_ingress_side_without_ray_or_models(module: str):
    loaded = at_import(module)
    assert not tops(loaded) & ({"ray"} | MODEL_LIBRARIES), module
    replica_side = {m for m in loaded if m.endswith((".deployment", ".runtime", "_runtime"))}
    assert not replica_side and "serve_app.deployment_client" not in loaded


@pytest.mark.parametrize("module", role_files("deployment"))
def test_deployment_files_are_replicas(module: str):
    loaded = {i.target for i in imports_of(module)}
    assert "ray" in tops(loaded)  # a Serve deployment
    assert not tops(loaded) & WEB
    assert not {m for m in loaded if m.endswith((".routes", ".serving", "ingress"))}


@pytest.mark.parametrize("module", RUNTIMES)
def test_runtimes_run_without_ray_or_http(module: str):
    """The model (and the store's client) work in any process: no Ray, no web framework, no
    ingress or replica code, even inside a function."""
    every = {i.target for i in imports_of(module)} | at_import(module)
    assert not tops(every) & ({"ray"} | WEB), module
    assert not {m for m in every if m.endswith((".routes", ".serving", ".deployment"))}


def test_the_role_checks_can_fail():
    """A module of the replica side seen through the same readers."""
    assert "ray" in tops(at_import("serve_app.ingress"))
    supervisor = {i.target for i in imports_of("serve_app.startup.supervisor")}
    assert "serve_app.startup.config" in supervisor


def import_graph() -> dict[str, set[str]]:
    return {
        m: {t for i in imports_of(m) if i.own for t in runs(i.target) if t != m} for m in MODULES
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_even_through_imports_inside_functions():
    assert cycles(import_graph()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Imports inside functions keep a heavy library out of the processes that do not need it:
# the model engines (torch, docTR, rapidocr, Z3); the model's arrays out of the bridge until
# it has bound the port, and out of the app's build step; the store's libraries out of
# `serve-app run` until the bridge is loading. The CLI imports a command's module only for
# that command (cli/main.py), so its modules import at the top (docTR's names aside).
HEAVY = {
    "serve_app.embeddings.torch_encoder",
    "serve_app.ocr.doctr_runtime",
    "serve_app.ocr.rapidocr_runtime",
    "serve_app.solver.search",
}


def test_imports_inside_functions_are_few():
    inside = [
        f"{m}:{i.line} {i.target}"
        for m in MODULES
        for i in imports_of(m)
        if i.own and i.in_function and i.target not in HEAVY
    ]
    assert len(inside) <= 10, "\n".join(inside)
    cli = [m for m in inside if m.startswith("serve_app.cli.")]
    assert not cli, cli


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module: str):
    assert len(MODULES[module].read_text().splitlines()) <= 400


def test_the_docs_say_which_role_files_each_capability_has():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for capability in CAPABILITIES:
        row = re.search(rf"^\| `{capability}/` \|(.+)$", section, re.M)
        assert row, f"docs/architecture.md's Layout has no row for {capability}/"
        role_column = row[1].split("|")[0]  # "no `config.py`" says there is none
        named = set(re.findall(r"(?<!no )`(\w+)\.py`", role_column))
        files = {p.stem for p in (PACKAGE / capability).glob("*.py")}
        roles = {"protocol", "routes", "serving", "deployment", "config", "jobs", "runtime"}
        assert named <= files, (capability, named - files)
        assert files & roles <= named, (capability, (files & roles) - named)
