"""`make demo` talks while ComfyUI trains: the pack's training events become step / loss / elapsed / time-left lines,
at most one every few seconds and always the last step."""

from tests.harness import progress_watch
from tests.harness.progress_watch import TrainingProgress


def _event(step, total=400, eta=80.0):
    return {"type": "md.training.progress",
            "data": {"step": step, "total": total, "losses": {"loss": 0.0123}, "eta_s": eta, "stage": "train"}}


def test_training_events_print_step_loss_elapsed_and_time_left(monkeypatch):
    printed = []
    watcher = TrainingProgress("http://127.0.0.1:1", "[shapes_t2v]", printer=lambda line, **_: printed.append(line))
    clock = iter([10.0, 11.0, 25.0, 26.0])
    monkeypatch.setattr(progress_watch.time, "monotonic", lambda: next(clock))
    watcher.started = 0.0
    watcher.handle(_event(1))  # the first event prints
    watcher.handle(_event(2))  # a second later: throttled
    watcher.handle({"type": "progress", "data": {"value": 3, "max": 400}})  # core's own events are not ours
    watcher.handle(_event(40, eta=60.0))  # ten seconds on
    watcher.handle(_event(400, eta=0.0))  # the last step always prints
    assert printed == ["[shapes_t2v] step 1/400 · loss 0.0123 · 10s elapsed · ~80s left",
                       "[shapes_t2v] step 40/400 · loss 0.0123 · 25s elapsed · ~60s left",
                       "[shapes_t2v] step 400/400 · loss 0.0123 · 26s elapsed · ~0s left"]


def test_the_websocket_address_follows_the_server_url():
    watcher = TrainingProgress("http://127.0.0.1:8188", "[x]")
    assert watcher.ws_url.startswith("ws://127.0.0.1:8188/ws?clientId=")
