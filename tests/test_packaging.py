"""The pack installs and is laid out as ComfyUI and its registry expect."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "nodes",
                 "execution", "node_helpers", "latent_preview"}


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements):
    out = set()
    for line in requirements:
        line = line.split("#", 1)[0].strip()
        if line:
            for sep in "<>=~![; ":
                line = line.split(sep)[0]
            out.add(line.lower())
    return out


def test_requirements_txt_matches_pyproject_dependencies():
    declared = _names(_pyproject()["project"]["dependencies"])
    listed = _names((ROOT / "requirements.txt").read_text().splitlines())
    assert declared == listed


def test_pyproject_has_registry_section_and_gpl_licence():
    data = _pyproject()
    comfy = data["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy.get(key), key
    assert (ROOT / comfy["Icon"]).exists()
    assert "test" in data["project"]["optional-dependencies"]
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()[:200]
    assert data["project"]["license"].startswith("GPL-3.0")


def test_motion_core_source_never_imports_comfyui():
    offenders = []
    for path in (ROOT / "motion_core").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in mods if m.split(".")[0] in COMFY_MODULES]
    assert offenders == []


def test_importing_motion_core_loads_no_comfyui_module():
    code = (
        "import sys, pkgutil, importlib, motion_core\n"
        "for m in pkgutil.walk_packages(motion_core.__path__, 'motion_core.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(COMFY_MODULES)!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_entry_point_exposes_v3_extension_and_web_directory():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    names = {n.name for n in tree.body if isinstance(n, (ast.AsyncFunctionDef, ast.FunctionDef))}
    assigns = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "comfy_entrypoint" in names and "WEB_DIRECTORY" in assigns
    assert (ROOT / "web").is_dir()
