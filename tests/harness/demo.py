"""`make demo`: start the provisioned ComfyUI headless with this pack, run the demo workflow, write the video.

Until the ShapesT2V model and the trainer land, the demo is the reference-clip round trip: a bundled procedural
reference clip goes through Load Reference Video and core Create Video / Save Video, and the written mp4 is copied
to demo-output/.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tests.harness.comfy_server import ComfyServer
from tests.harness.provision import REPO_ROOT
from tests.harness.workflow_api import to_api_prompt
from tests.video_samples import write_sample_video

WORKFLOW = REPO_ROOT / "workflows" / "reference_clip_roundtrip.json"
OUTPUT = REPO_ROOT / "demo-output" / "reference_roundtrip.mp4"


def _saved_files(outputs: dict) -> list[dict]:
    return [item for out in outputs.values() for items in out.values() if isinstance(items, list)
            for item in items if isinstance(item, dict) and "filename" in item]


def main() -> int:
    started = time.monotonic()
    with ComfyServer() as server:
        print(f"ComfyUI is up at {server.url} (log: {server.log_path})", flush=True)
        write_sample_video(server.input_dir / "md_demo_reference.mp4", frames=16, width=96, height=64, fps=8)
        prompt = to_api_prompt(json.loads(WORKFLOW.read_text()), server.object_info())
        result = server.run(prompt, timeout=600)
        if result.status != "success":
            print(f"The demo workflow failed: {json.dumps(result.error, indent=2)}", file=sys.stderr)
            return 1
        files = [f for f in _saved_files(result.outputs) if f["filename"].endswith(".mp4")]
        if not files:
            print(f"The demo workflow wrote no video: {result.outputs}", file=sys.stderr)
            return 1
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        partial = OUTPUT.with_suffix(".mp4.partial")
        partial.write_bytes(server.fetch_output(files[0]))
        os.replace(partial, OUTPUT)
    print(f"Wrote {OUTPUT.relative_to(REPO_ROOT)} ({OUTPUT.stat().st_size} bytes) in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
