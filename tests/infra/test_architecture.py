"""The package layout, checked by walking app/ with `ast` (nothing is imported).

1. The lifecycle only looks backward: at module level a package imports only from itself,
   the foundation and earlier stages (STAGES, in ARCHITECTURE.md's order).
2. No function-level `from app... import` / `import app...` (the usual way to dodge an
   import cycle): fix the cycle by moving the shared piece below both. No module looked up
   by name either (`importlib.import_module`, `__import__`).
3. Views and API modules never commit or roll back: app/core/boundary.py does, once per request.
4. One loader per audience for a tender (app/tenders/access.py, app/panels/access.py): no
   two packages define their own `_tender`-style loader.
5. The libraries bidding/ and evaluation/ stay pure: no app, Flask or SQLAlchemy.
6. Test modules stand alone: no file under tests/ imports a test_*.py module (shared
   builders live in tests/factories/).

Each exception is in an allow-list below with the reason. An entry that no longer matches
anything fails too (test_allow_lists_are_current): delete it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"

# Lifecycle order. Foundation packages may import each other; "top" may import anything.
FOUNDATION = {
    "core", "extensions", "errors", "i18n", "web", "events", "tasks", "storage", "uploads",
    "pdf", "permissions", "audit", "accounts", "centres", "companies", "tender_templates",
    "security_headers",  # the response headers, installed by the factory
}  # fmt: skip
STAGES = [
    "tenders", "custody", "bids", "opening", "panels", "evaluations", "records", "results",
]  # fmt: skip
TOP = {
    "portal", "bidder", "supervision", "admin", "main", "api", "scenario", "demo", "cli",
    "clock",  # the clock drives every stage's time-driven steps (close, seal, notices, alerts)
}  # fmt: skip
# app/__init__.py (the factory) and app/models.py (every model, for Alembic) are top as well.
TOP_MODULES = {"app", "app.models"}

# Allow-lists: each entry names the exception; its comment says why. Entries marked
# "being removed (issue 11)" are violations other branches are removing right now.

# (1) Module-level imports from an earlier stage to a later one: (importing, imported module).
BACKWARD_ALLOWED: set[tuple[str, str]] = set()

# (2) Function-level imports of app modules: (importing module, imported module).
FUNCTION_IMPORTS_ALLOWED: set[tuple[str, str]] = {
    # The RQ worker builds its app with the factory, which imports app.tasks.
    ("app.tasks", "app"),
}
# Whole modules whose function-level imports are their design, not a dodge.
FUNCTION_IMPORT_MODULES_ALLOWED: set[str] = {
    # The factory: every `import app.x` runs app/__init__.py first, so create_app can only
    # import the extensions, blueprints and CLI once it runs.
    "app",
}

# (3) Commit / rollback calls in view and API modules: (module, function).
COMMITS_ALLOWED: set[tuple[str, str]] = set()

# (4) Per-package tender loaders, replaced by the access helpers.
TENDER_LOADERS = {
    "_tender",
    "_public_tender",
    "_staff_tender",
    "_visible_tender",
    "_viewer_tender",
    "_panel_tender",
    "_scoped_tender",
}
# (module, function name).
TENDER_LOADERS_ALLOWED: set[tuple[str, str]] = set()


# --- the walk ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "app.bids.views"
    target: str  # the imported app module, e.g. "app.results.operations"
    line: int
    in_function: bool

    def where(self) -> str:
        return f"{path_of(self.module)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def path_of(module: str) -> str:
    return str(modules()[module].relative_to(ROOT))


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def package_of(module: str) -> str:
    """The top-level package (or module) of app/ a module belongs to: "bids", "cli", "app"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "app"


def stage_of(module: str) -> tuple[int, str]:
    """(rank, name): 0 for the foundation, 1.. along STAGES, then top."""
    package = package_of(module)
    if package in FOUNDATION:
        return 0, "foundation"
    if package in STAGES:
        return 1 + STAGES.index(package), package
    if package in TOP or module in TOP_MODULES:
        return 1 + len(STAGES), "top"
    raise AssertionError(
        f"app/{package} has no place in the lifecycle: add it to FOUNDATION, STAGES or TOP "
        "in tests/infra/test_architecture.py (and to ARCHITECTURE.md)"
    )


def resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if modules()[module].name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The app modules an import statement loads (`from app import x` means app.x when
    x is a module, the package itself otherwise)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = resolve(module, node)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
            for alias in node.names
        ]
    return sorted({name for name in names if name == "app" or name.startswith("app.")})


class _Walker(ast.NodeVisitor):
    def __init__(self, module: str):
        self.module = module
        self.depth = 0
        self.imports: list[Import] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for target in targets(self.module, node):
            self.imports.append(Import(self.module, target, node.lineno, self.depth > 0))

    visit_Import = visit_ImportFrom = _import


@cache
def imports() -> list[Import]:
    found = []
    for module in modules():
        walker = _Walker(module)
        walker.visit(tree(module))
        found.extend(walker.imports)
    return found


def enclosing_functions(module: str) -> dict[ast.AST, str]:
    """Every node inside a module-level function or class -> that function's name."""
    owner = {}
    for top in tree(module).body:
        if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for node in ast.walk(top):
                owner[node] = top.name
    return owner


# --- the rules --------------------------------------------------------------------------------


def backward_imports() -> dict[tuple[str, str], str]:
    found = {}
    for item in imports():
        if item.in_function or package_of(item.module) == package_of(item.target):
            continue
        (rank, stage), (target_rank, target_stage) = stage_of(item.module), stage_of(item.target)
        if rank == target_rank == 0 or rank > target_rank or stage == "top":
            continue
        found[(item.module, item.target)] = (
            f"{item.where()}: {stage} imports {item.target} ({target_stage}, a later stage)"
        )
    return found


def function_imports() -> dict[tuple[str, str], str]:
    return {
        (item.module, item.target): f"{item.where()}: function-level import of {item.target}"
        for item in imports()
        if item.in_function and item.module not in FUNCTION_IMPORT_MODULES_ALLOWED
    }


def is_view_module(module: str) -> bool:
    parts = module.split(".")
    if module == "app.core.boundary" or len(parts) < 3:
        return False
    return (
        (len(parts) == 3 and (parts[2] == "views" or parts[2].endswith("_views")))
        or (parts[1] == "api" and len(parts) == 3)
    )  # fmt: skip


def _is_session(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "session") or (
        isinstance(node, ast.Attribute) and node.attr == "session"
    )


def view_commits() -> dict[tuple[str, str], str]:
    found = {}
    for module in modules():
        if not is_view_module(module):
            continue
        owner = enclosing_functions(module)
        for node in ast.walk(tree(module)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("commit", "rollback")
                and _is_session(node.func.value)
            ):
                function = owner.get(node, "<module>")
                key = (module, function)
                lines = found.get(key, f"{path_of(module)}: {function}() calls")
                found[key] = f"{lines} session.{node.func.attr}() (line {node.lineno})"
    return found


def tender_loaders() -> dict[tuple[str, str], str]:
    by_name = defaultdict(list)
    for module in modules():
        for node in tree(module).body:
            if isinstance(node, ast.FunctionDef) and node.name in TENDER_LOADERS:
                by_name[node.name].append((module, node.lineno))
    found = {}
    for name, places in by_name.items():
        if len({package_of(module) for module, _ in places}) < 2:
            continue
        for module, line in places:
            found[(module, name)] = (
                f"{path_of(module)}:{line}: defines {name}() (also defined in "
                f"{len(places) - 1} other module(s)); use app/tenders/access.py "
                "or app/panels/access.py"
            )
    return found


def report(title: str, found: dict, allowed: dict) -> str:
    lines = [found[key] for key in sorted(found) if key not in allowed]
    return f"{title} ({len(lines)}):\n  " + "\n  ".join(lines) if lines else ""


def test_every_package_has_a_stage():
    for module in modules():
        stage_of(module)


def test_lifecycle_only_imports_backward():
    problem = report(
        "Module-level imports from an earlier lifecycle stage to a later one; move the shared "
        "piece below both (or, if it truly belongs, allow-list it with the reason)",
        backward_imports(),
        BACKWARD_ALLOWED,
    )
    assert not problem, problem


def test_no_function_level_app_imports():
    problem = report(
        "Function-level imports of app modules; import at module level (fix a cycle by moving "
        "the shared piece below both)",
        function_imports(),
        FUNCTION_IMPORTS_ALLOWED,
    )
    assert not problem, problem


def test_views_and_api_never_commit():
    problem = report(
        "session.commit()/rollback() in view or API modules; use app/core/boundary.py "
        "(transactional, perform, attempt)",
        view_commits(),
        COMMITS_ALLOWED,
    )
    assert not problem, problem


def test_one_tender_loader_per_audience():
    problem = report(
        "Per-package tender loaders with the same name in several packages",
        tender_loaders(),
        TENDER_LOADERS_ALLOWED,
    )
    assert not problem, problem


def test_allow_lists_are_current():
    """An allow-list entry that matches nothing any more is deleted, so the lists stay short."""
    stale = []
    for name, allowed, found in (
        ("BACKWARD_ALLOWED", BACKWARD_ALLOWED, backward_imports()),
        ("FUNCTION_IMPORTS_ALLOWED", FUNCTION_IMPORTS_ALLOWED, function_imports()),
        ("COMMITS_ALLOWED", COMMITS_ALLOWED, view_commits()),
        ("TENDER_LOADERS_ALLOWED", TENDER_LOADERS_ALLOWED, tender_loaders()),
    ):
        stale += [f"{name}: {key!r}" for key in sorted(allowed) if key not in found]
    used = {item.module for item in imports() if item.in_function}
    stale += [
        f"FUNCTION_IMPORT_MODULES_ALLOWED: {module!r}"
        for module in FUNCTION_IMPORT_MODULES_ALLOWED
        if module not in used
    ]
    assert not stale, "Allow-list entries that match nothing any more; delete them:\n  " + (
        "\n  ".join(stale)
    )


def test_libraries_stay_pure():
    impure = []
    for library in ("bidding", "evaluation"):
        for path in sorted((ROOT / library).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                impure += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}"
                    for name in names
                    if name.split(".")[0] in ("app", "flask", "sqlalchemy")
                    or name.startswith("flask_")
                ]
    assert not impure, "The pure libraries import the app or its frameworks:\n  " + (
        "\n  ".join(impure)
    )


def test_no_modules_looked_up_by_name():
    found = []
    for module in modules():
        for node in ast.walk(tree(module)):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            ):
                found.append(f"{path_of(module)}:{node.lineno}")
    assert not found, "Modules looked up by name; import them:\n  " + "\n  ".join(found)


def test_test_modules_stand_alone():
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}"
                for name in names
                if name.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert not found, (
        "Test modules importing other test modules; move the shared builder to "
        "tests/factories/ (or a fixture in conftest.py):\n  " + "\n  ".join(found)
    )
