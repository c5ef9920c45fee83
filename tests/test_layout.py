"""The engine's layout as DESIGN.md draws it: no import circles in motion_core, one package per model family that
imports no other family, each family recognising its own folders, and the research probes outside the product path.

Imports are read as text (ast), function-level ones included, so a lazy import inside a function counts too.
"""

import ast
from pathlib import Path

import pytest

from motion_core.backbones import FAMILIES, save_tiny_diffusers_folder, save_tiny_wan_diffusers_folder

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "motion_core"
FAMILY_NAMES = ("unet3d", "animatediff", "wan")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph(root: Path) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in modules and "." in imported:
                imported = imported.rpartition(".")[0]
            # A module importing its own parent package is how Python loads it, not a dependency back.
            if imported in modules and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_motion_core_has_no_import_circles():
    assert _cycles(_graph(ENGINE)) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_no_family_package_imports_another(family):
    others = [f"motion_core.backbones.{other}" for other in FAMILY_NAMES if other != family]
    for path in (ENGINE / "backbones" / family).rglob("*.py"):
        crossing = [name for name in _imports(path) if any(name == o or name.startswith(o + ".") for o in others)]
        assert crossing == [], f"{path.relative_to(ROOT)} imports another family: {crossing}"


def test_shared_backbone_helpers_import_no_family():
    families = tuple(f"motion_core.backbones.{name}" for name in FAMILY_NAMES)
    above = {"__init__.py", "loading.py", "tiny.py", "reference_modules.py"}  # the modules that pick a family
    for path in (ENGINE / "backbones").glob("*.py"):
        if path.name in above:
            continue
        crossing = [n for n in _imports(path) if n.startswith(families)]
        assert crossing == [], f"{path.name} sits below the families but imports {crossing}"


def test_every_family_is_registered_once_in_order():
    assert [family.name for family in FAMILIES] == ["wan", "unet3d", "animatediff"]


def test_each_family_recognises_its_own_folder_and_no_other(tmp_path):
    folders = {"unet3d": save_tiny_diffusers_folder(tmp_path / "unet3d", "unet3d"),
               "animatediff": save_tiny_diffusers_folder(tmp_path / "animatediff", "animatediff"),
               "wan": save_tiny_wan_diffusers_folder(tmp_path / "wan")}
    for family in FAMILIES:
        claimed = [name for name, folder in folders.items() if family.recognises(Path(folder))]
        assert claimed == [family.name]


def test_nothing_in_the_product_imports_the_research_probes():
    product = [p for p in [*ENGINE.rglob("*.py"), *(ROOT / "nodes").rglob("*.py"), ROOT / "__init__.py"]
               if "research" not in p.relative_to(ROOT).parts]
    for path in product:
        used = [n for n in _imports(path) if n.startswith("motion_core.research") or n.endswith(".research")]
        assert used == [], f"{path.relative_to(ROOT)} imports research probes: {used}"
