// Motion Customization: live training feedback on the Train Motion LoRA node.
// The server sends `md.training.progress` after every step and `md.training.preview` after every validation
// (see nodes/progress.py); this extension draws the loss curve under the node's widgets and shows the latest
// preview clip (an animated WebP) in a small image widget.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TRAIN_NODE = "MDTrainMotionLoRA";
const CHART_HEIGHT = 120;
const MAX_POINTS = 2000;

function nodeById(id) {
  return app.graph?.getNodeById?.(Number(id)) ?? null;
}

function drawChart(node, ctx) {
  const points = node.mdLoss ?? [];
  const top = node.size[1] - CHART_HEIGHT - 6;
  const left = 8;
  const width = node.size[0] - 16;
  ctx.save();
  ctx.fillStyle = "#1b1d22";
  ctx.fillRect(left, top, width, CHART_HEIGHT);
  ctx.strokeStyle = "#444";
  ctx.strokeRect(left, top, width, CHART_HEIGHT);
  ctx.fillStyle = "#aaa";
  ctx.font = "11px sans-serif";
  if (points.length < 2) {
    ctx.fillText(points.length ? "training…" : "loss chart: queue the prompt", left + 6, top + 16);
    ctx.restore();
    return;
  }
  const values = points.map((p) => p.loss);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const lastStep = points[points.length - 1].step;
  const total = Math.max(node.mdTotal ?? lastStep, lastStep);
  ctx.strokeStyle = "#7fb2ff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => {
    const x = left + (p.step / total) * width;
    const y = top + CHART_HEIGHT - 4 - ((p.loss - lo) / span) * (CHART_HEIGHT - 20);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  const last = points[points.length - 1];
  ctx.fillText(`step ${last.step}/${total}  loss ${last.loss.toFixed(4)}  ETA ${Math.round(node.mdEta ?? 0)}s`,
    left + 6, top + 14);
  ctx.restore();
}

app.registerExtension({
  name: "motion_customization.training_monitor",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== TRAIN_NODE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      this.mdLoss = [];
      const img = document.createElement("img");
      img.style.width = "100%";
      img.style.objectFit = "contain";
      img.alt = "training preview";
      img.style.display = "none"; // shown once the first validation preview arrives
      this.mdPreview = img;
      this.addDOMWidget?.("md_training_preview", "preview", img, { serialize: false, hideOnZoom: false });
      this.setSize([Math.max(this.size[0], 340), this.size[1] + CHART_HEIGHT + 12]);
      return result;
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      if (!this.flags?.collapsed) drawChart(this, ctx);
    };
  },

  setup() {
    api.addEventListener("md.training.progress", ({ detail }) => {
      const node = nodeById(detail.node);
      if (!node) return;
      if (detail.step === 1 || !node.mdLoss) node.mdLoss = [];
      node.mdLoss.push({ step: detail.step, loss: detail.losses.total ?? Object.values(detail.losses)[0] });
      if (node.mdLoss.length > MAX_POINTS) node.mdLoss.splice(0, node.mdLoss.length - MAX_POINTS);
      node.mdTotal = detail.total;
      node.mdEta = detail.eta_s;
      node.setDirtyCanvas(true, false);
    });
    api.addEventListener("md.training.preview", ({ detail }) => {
      const node = nodeById(detail.node);
      if (!node?.mdPreview) return;
      node.mdPreview.src = detail.image;
      node.mdPreview.style.display = "";
      node.mdPreview.title = `preview at step ${detail.step}`;
      node.setDirtyCanvas(true, false);
    });
  },
});
