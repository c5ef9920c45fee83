"""Drive a real, headless ComfyUI over its HTTP API: start, queue prompts, wait for results, read the log.

Each server gets its own base directory (custom_nodes, models, input, output, user, temp) with this pack linked
into custom_nodes, so tests and the demo never touch the provisioned ComfyUI's own folders.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from .provision import REPO_ROOT, comfyui_dir

PACK_NAME = "comfyui-motion-customization"


class ComfyError(RuntimeError):
    """The server failed to start or a prompt did not finish as expected."""


@dataclass
class PromptResult:
    prompt_id: str
    status: str  # "success" or "error"
    outputs: dict
    messages: list

    @property
    def videos(self) -> list[dict]:
        """The .mp4 files the prompt's output nodes reported (filename/subfolder/type dicts), in output order."""
        return [item for out in self.outputs.values() for items in out.values() if isinstance(items, list)
                for item in items if isinstance(item, dict) and item.get("filename", "").endswith(".mp4")]

    @property
    def error(self) -> dict | None:
        for kind, data in self.messages:
            if kind == "execution_error":
                return data
        return None

    @property
    def error_text(self) -> str:
        """The failing node, its message and traceback, for assertion messages."""
        err = self.error
        if not err:
            return f"status {self.status}, no execution_error message"
        trace = "".join(err.get("traceback") or [])
        return f"{err.get('node_type')} (node {err.get('node_id')}): {err.get('exception_message')}\n{trace}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI process on 127.0.0.1 with this pack installed; use as a context manager."""

    def __init__(self, base_dir: Path | None = None, port: int | None = None, extra_args: list[str] | None = None):
        self.comfy_dir = comfyui_dir()
        if not (self.comfy_dir / "main.py").exists():
            raise ComfyError(f"ComfyUI is not provisioned at {self.comfy_dir}; run `python tests/harness/provision.py`.")
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="md-comfy-"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = extra_args or []
        self.log_path = self.base_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    def _prepare_dirs(self) -> None:
        for sub in ("custom_nodes", "input", "output", "temp", "user", "models"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        link = self.base_dir / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(REPO_ROOT, target_is_directory=True)

    def start(self, timeout: float = 240.0) -> "ComfyServer":
        self._prepare_dirs()
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        env.pop("MOTION_CORE_ALLOW_ANY_PATH", None)  # the pack's defaults: typed paths stay in ComfyUI's folders
        cmd = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base_dir), "--disable-auto-launch",
            "--database-url", "sqlite:///:memory:", *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComfyError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise ComfyError(f"ComfyUI did not become ready in {timeout:.0f}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=kw.pop("timeout", 30), **kw)

    def object_info(self) -> dict:
        return self.get("/object_info", timeout=120).json()

    def queue(self, prompt: dict) -> str:
        """Queue an API-format prompt; raise with the server's validation errors if it refuses."""
        body = {"prompt": prompt, "client_id": uuid.uuid4().hex}
        resp = requests.post(f"{self.url}/prompt", json=body, timeout=60)
        if resp.status_code != 200:
            raise ComfyError(f"/prompt refused the prompt ({resp.status_code}): {resp.text[:3000]}")
        return resp.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0) -> PromptResult:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ComfyError(f"ComfyUI died while running {prompt_id}:\n{self.log()[-4000:]}")
            entry = self.get(f"/history/{prompt_id}").json().get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") in ("success", "error"):
                    return PromptResult(prompt_id, status["status_str"], entry.get("outputs", {}),
                                        status.get("messages", []))
            time.sleep(0.5)
        raise ComfyError(f"prompt {prompt_id} did not finish in {timeout:.0f}s:\n{self.log()[-3000:]}")

    def run(self, prompt: dict, timeout: float = 600.0) -> PromptResult:
        return self.wait(self.queue(prompt), timeout=timeout)

    def fetch_output(self, file_info: dict) -> bytes:
        """Download an output file described by a node's ui entry ({filename, subfolder, type})."""
        resp = self.get("/view", params={k: file_info.get(k, "") for k in ("filename", "subfolder", "type")})
        resp.raise_for_status()
        return resp.content


def load_api_prompt(path: Path) -> dict:
    return json.loads(Path(path).read_text())
