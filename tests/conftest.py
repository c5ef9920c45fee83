"""Shared test set-up: one torch thread (two cores contend), deterministic seeds."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- end-to-end tier: one real ComfyUI server per test session -------------------------------------------------

@pytest.fixture(scope="session")
def comfy():
    """A running headless ComfyUI (CPU, loopback, free port) with this pack in custom_nodes."""
    from tests.harness.comfy_server import ComfyServer

    server = ComfyServer()
    with server:
        yield server
