"""The DepthStyle library: models, Hub loading, depth, stylisation, losses. No ComfyUI imports."""
