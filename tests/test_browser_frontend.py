"""The pack in the real ComfyUI frontend, driven in headless Debian Chromium by Playwright.

Every shared workflow loads without a missing-node dialog; the ShapesT2V demo workflow queued from the page (the
built-in model, its bundled reference clip, fewer steps) draws the live loss chart and shows a preview clip on the
Train Motion LoRA node. Screenshots land in test-artifacts/ for a person to look at.
"""

import json
import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
SHAPES_REFERENCE = ROOT / "motion_core" / "toy" / "assets" / "shapes_circle_reference.gif"


@pytest.fixture(scope="module")
def page(comfy):
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed; `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    shutil.copy(SHAPES_REFERENCE, comfy.input_dir / SHAPES_REFERENCE.name)
    profile = tempfile.mkdtemp(prefix="md-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000})
        tab = context.pages[0] if context.pages else context.new_page()
        tab.goto(comfy.url, wait_until="domcontentloaded", timeout=120_000)
        tab.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
        _close_templates_dialog(tab)
        yield tab
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def _close_templates_dialog(tab) -> None:
    """On first load the frontend opens a Templates dialog over the canvas; close it before working the graph."""
    dialog = tab.locator(".p-dialog").filter(has_text="Templates")
    try:
        dialog.first.wait_for(state="visible", timeout=20_000)
    except Exception:  # noqa: BLE001 - some frontends skip the dialog; nothing to close then
        return
    close = dialog.first.locator("button[aria-label='Close'], .p-dialog-header-close, button:has(.pi-times)")
    if close.count():
        close.first.click()
    else:
        tab.keyboard.press("Escape")
    dialog.first.wait_for(state="hidden", timeout=10_000)


def _load(page, workflow: dict) -> dict:
    return page.evaluate("""async (wf) => {
        await window.app.loadGraphData(wf);
        await new Promise(r => setTimeout(r, 500));
        const known = window.LiteGraph.registered_node_types;
        const missing = window.app.graph._nodes.filter(n => !(n.type in known)).map(n => n.type);
        const dialog = Array.from(document.querySelectorAll('.p-dialog, .comfy-modal'))
            .map(d => d.innerText).filter(t => /missing/i.test(t));
        return {missing, dialog, count: window.app.graph._nodes.length};
    }""", workflow)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_loads_in_the_frontend_without_missing_nodes(page, path):
    workflow = json.loads(path.read_text())
    result = _load(page, workflow)
    assert result["missing"] == [] and result["dialog"] == [], result
    assert result["count"] == len(workflow["nodes"])
    page.evaluate("() => { window.app.canvas.deselectAll?.(); window.app.canvas.fitViewToSelectionAnimated?.(); }")
    page.wait_for_timeout(800)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"workflow_{path.stem}.png"))


def test_training_in_the_browser_draws_the_loss_chart_and_a_preview(page):
    workflow = json.loads((ROOT / "workflows" / "shapes_t2v_demo.json").read_text())
    _load(page, workflow)
    page.evaluate("""() => {
        const set = (type, values) => window.app.graph._nodes.filter(n => n.type === type).forEach(n => {
            for (const [name, value] of Object.entries(values)) {
                const w = n.widgets.find(w => w.name === name);
                if (!w) throw new Error(`${type} has no widget ${name}`);
                w.value = value;
            }
        });
        set("MDLoadVideoModel", {model: "built-in: ShapesT2V", device: "cpu"});
        set("MDTrainMotionLoRA", {steps: 6, validate_every: 2, checkpoint_every: 0});
        set("MDSampleVideo", {steps: 2});
    }""")
    page.evaluate("() => window.app.queuePrompt(0, 1)")
    page.wait_for_function("""() => {
        const n = window.app.graph._nodes.find(n => n.type === "MDTrainMotionLoRA");
        return n && n.mdLoss && n.mdLoss.length >= 6 && n.mdPreview && n.mdPreview.src.startsWith("data:image/webp");
    }""", timeout=300_000)
    train = page.evaluate("""() => {
        const n = window.app.graph._nodes.find(n => n.type === "MDTrainMotionLoRA");
        window.app.canvas.centerOnNode?.(n);
        window.app.graph.setDirtyCanvas(true, true);
        return {points: n.mdLoss.length, total: n.mdTotal};
    }""")
    assert train == {"points": 6, "total": 6}
    page.wait_for_timeout(800)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "training_in_browser.png"))
