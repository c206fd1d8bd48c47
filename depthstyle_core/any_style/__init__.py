"""Any painting in one forward pass: the built-in MicroAST network, its weights, strength and depth.

The weights ship inside the package (``weights/``, MIT, converted from the authors' files), so
``stylize_any(load_any_style_model(), photo, painting)`` (in :mod:`.stylize` and :mod:`.model_file`)
works on a fresh install with no download.
"""

# Defaults shared by the library, the command and the node; here, free of torch, so that
# `depthstyle --help` stays fast. The painting's long side in pixels before the network reads it:
DEFAULT_STYLE_SIZE = 512
# How much of the photo the nearest things keep in the command and the node (the library's own default
# is 0: depth is optional there):
DEFAULT_DEPTH_PRESERVE = 0.5
