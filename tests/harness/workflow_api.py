"""Turn a UI-format workflow (what ComfyUI's Load menu opens) into the API-format prompt /prompt accepts.

The UI format stores widget values positionally; mapping them to input names needs the server's /object_info,
exactly as the frontend does. Validation errors name the node and the problem, so a stale workflow fails loudly.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Frontend-only nodes that never reach the server.
UI_ONLY_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


class WorkflowError(ValueError):
    """The workflow does not match the running server (missing node type, bad link, invalid widget value)."""


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _widget_inputs(info: dict) -> list[tuple[str, list]]:
    out = []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            if _is_widget(spec):
                out.append((name, spec))
    return out


def _has_control_after_generate(spec) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(opts.get("control_after_generate"))


UPLOAD_BUTTON_VALUES = {"image", "video", "audio", "upload"}


def _has_upload_button(spec) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return any(opts.get(k) for k in ("image_upload", "video_upload", "audio_upload", "file_upload"))


def _check_value(node_id, node_type, name, spec, value):
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    options = kind if isinstance(kind, list) else opts.get("options") if kind == "COMBO" else None
    if options is not None and value not in options:
        raise WorkflowError(f"node {node_id} ({node_type}): {name}={value!r} is not one of {options[:10]}")
    if kind in ("INT", "FLOAT"):
        if not isinstance(value, (int, float)):
            raise WorkflowError(f"node {node_id} ({node_type}): {name}={value!r} is not a number")
        if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
            raise WorkflowError(f"node {node_id} ({node_type}): {name}={value} is outside [{opts.get('min')}, "
                                f"{opts.get('max')}]")


def to_api_prompt(workflow: dict, object_info: dict, check_combos: bool = True) -> dict:
    """Convert and validate; combo checks can be skipped for file choices that a test puts in place later."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {}
    for link in workflow.get("links", []):
        link_id, src, src_slot, dst, dst_slot, _type = link[:6]
        if src not in nodes or dst not in nodes:
            raise WorkflowError(f"link {link_id} joins a node that is not in the workflow ({src} -> {dst})")
        links[link_id] = (src, src_slot)
    prompt = {}
    for node in workflow["nodes"]:
        node_type = node["type"]
        if node_type in UI_ONLY_TYPES or node.get("mode", 0) in (2, 4):  # 2 muted, 4 bypassed
            continue
        if node_type not in object_info:
            raise WorkflowError(f"node {node['id']}: type {node_type!r} is not installed on this server")
        info = object_info[node_type]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        for name, spec in _widget_inputs(info):
            if not values:
                break
            value = values.pop(0)
            if _has_control_after_generate(spec) and values:
                values.pop(0)  # the "fixed/randomize" companion value the frontend stores
            if _has_upload_button(spec) and values and values[0] in UPLOAD_BUTTON_VALUES:
                values.pop(0)  # older frontends also store the upload button's value
            if check_combos or not (isinstance(spec[0], list) or spec[0] == "COMBO"):
                _check_value(node["id"], node_type, name, spec, value)
            inputs[name] = value
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            if slot["link"] not in links:
                raise WorkflowError(f"node {node['id']} ({node_type}): input {slot['name']} uses missing link "
                                    f"{slot['link']}")
            src, src_slot = links[slot["link"]]
            inputs[slot["name"]] = [str(src), src_slot]
        required = info["input"].get("required", {})
        missing = [k for k in required if k not in inputs]
        if missing:
            raise WorkflowError(f"node {node['id']} ({node_type}): required inputs not set: {missing}")
        prompt[str(node["id"])] = {"class_type": node_type, "inputs": inputs}
    return prompt
