// DepthStyle Structure Report: show the report's numbers inside the node after a run, as text the user
// can read and copy. The node's text output (for Preview Any and other nodes) is unchanged.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const NODE = "DepthStyle_StructureReport";
const WIDGET = "numbers";

function numbersWidget(node) {
  const existing = node.widgets?.find((w) => w.name === WIDGET);
  if (existing) return existing;
  const { widget } = ComfyWidgets.STRING(node, WIDGET, ["STRING", { multiline: true }], app);
  widget.serialize = false; // not saved in the workflow
  widget.options.serialize = false; // not sent with the prompt
  if (widget.inputEl) {
    widget.inputEl.readOnly = true;
    widget.inputEl.style.opacity = "0.85";
  }
  return widget;
}

app.registerExtension({
  name: "DepthStyle.StructureReportNumbers",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = (message?.text ?? []).join("\n");
      if (!text) return;
      numbersWidget(this).value = text;
      this.setDirtyCanvas?.(true, true);
    };
  },
});
