"""Training loops. They depend on depthstyle_core and never on ComfyUI."""
