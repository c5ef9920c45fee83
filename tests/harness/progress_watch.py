"""Training progress on the console while a headless ComfyUI trains: the pack's `md.training.progress` events, read
from the server's websocket (every client gets them) and printed as step, loss, elapsed and time left.

Used by `make demo`, whose training runs inside ComfyUI and would otherwise be minutes of silence. aiohttp is
ComfyUI's own dependency, so nothing is added to install this.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

PRINT_EVERY_S = 10.0


def _line(prefix: str, data: dict, elapsed: float) -> str:
    losses = data.get("losses") or {}
    loss = " ".join(f"{name} {value:.4f}" for name, value in losses.items()) or "loss -"
    left = data.get("eta_s")
    return (f"{prefix} step {data.get('step')}/{data.get('total')} · {loss} · {elapsed:.0f}s elapsed · "
            f"{'~' + format(left, '.0f') + 's left' if isinstance(left, (int, float)) else 'time left -'}")


class TrainingProgress:
    """Prints a line at most every PRINT_EVERY_S seconds (and at the last step) while the server trains."""

    def __init__(self, url: str, prefix: str, printer=print):
        self.ws_url = url.replace("http://", "ws://", 1) + f"/ws?clientId={uuid.uuid4().hex}"
        self.prefix, self.printer = prefix, printer
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="md-demo-progress", daemon=True)
        self.lines: list[str] = []
        self._last_print = 0.0

    def __enter__(self) -> "TrainingProgress":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def handle(self, message: dict) -> None:
        if message.get("type") != "md.training.progress":
            return
        data = message.get("data") or {}
        last = data.get("step") == data.get("total")
        now = time.monotonic()
        if last or not self.lines or now - self._last_print >= PRINT_EVERY_S:
            self._last_print = now
            line = _line(self.prefix, data, now - self.started)
            self.lines.append(line)
            self.printer(line, flush=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except Exception as error:  # noqa: BLE001 - progress is a courtesy; the demo itself goes on
            self.printer(f"{self.prefix} (no live progress: {error})", flush=True)

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.ws_url, heartbeat=30) as socket:
                while not self._stop.is_set():
                    try:
                        message = await socket.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return
                    if message.type == aiohttp.WSMsgType.TEXT:  # binary frames are preview images
                        self.handle(json.loads(message.data))
