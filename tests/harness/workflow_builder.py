"""Build UI-format workflows (what ComfyUI's Load menu opens) from a compact graph description.

Widget values are written in the order the server's /object_info declares them, input sockets and output slots are
looked up there too, so the JSON the frontend reads matches the running nodes exactly. Used by make_workflows.py
to (re)generate workflows/; the committed JSON files are what users load.
"""

from __future__ import annotations

from .workflow_api import WIDGET_TYPES, _has_control_after_generate, _is_widget


class Graph:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self._column_x: dict[int, int] = {}

    def add(self, node_type: str, column: int, widgets: dict | None = None, title: str | None = None,
            height: int = 300, width: int = 340) -> int:
        node_id = len(self.nodes) + 1
        x = 40 + column * 400
        y = self._column_x.get(column, 60)
        self._column_x[column] = y + height + 40
        node = {"id": node_id, "type": node_type, "pos": [x, y], "size": [width, height], "flags": {},
                "order": node_id - 1, "mode": 0, "inputs": [], "outputs": [], "properties": {
                    "Node name for S&R": node_type}, "widgets_values": []}
        if title:
            node["title"] = title
        if node_type in ("Note", "MarkdownNote"):
            node["widgets_values"] = [widgets["text"]]
            self.nodes.append(node)
            return node_id
        info = self.info[node_type]
        widgets = dict(widgets or {})
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                if _is_widget(spec):
                    default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
                    if default is None and isinstance(spec[0], list):
                        default = spec[0][0] if spec[0] else ""
                    node["widgets_values"].append(widgets.pop(name, default))
                    if _has_control_after_generate(spec):
                        node["widgets_values"].append("fixed")
                else:
                    node["inputs"].append({"name": name, "type": spec[0], "link": None})
        if widgets:
            raise KeyError(f"{node_type} has no widget(s) {sorted(widgets)}")
        for slot, (kind, name) in enumerate(zip(info["output"], info["output_name"])):
            node["outputs"].append({"name": name, "type": kind, "links": [], "slot_index": slot})
        self.nodes.append(node)
        return node_id

    def link(self, src: int, output: str, dst: int, input_name: str) -> None:
        source, target = self.nodes[src - 1], self.nodes[dst - 1]
        slot = next(i for i, o in enumerate(source["outputs"]) if o["name"] == output)
        kind = source["outputs"][slot]["type"]
        link_id = len(self.links) + 1
        inputs = target["inputs"]
        index = next((i for i, s in enumerate(inputs) if s["name"] == input_name), None)
        if index is None:  # a widget converted to a socket (e.g. fps fed by a node)
            inputs.append({"name": input_name, "type": kind, "widget": {"name": input_name}, "link": link_id})
            index = len(inputs) - 1
        else:
            inputs[index]["link"] = link_id
        source["outputs"][slot]["links"].append(link_id)
        self.links.append([link_id, src, slot, dst, index, kind])

    def to_json(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


__all__ = ["Graph", "WIDGET_TYPES"]
