"""Any painting in one forward pass: the built-in MicroAST network, its weights, strength and depth.

The weights ship inside the package (``weights/``, MIT, converted from the authors' files), so
``stylize_any(load_any_style_model(), photo, painting)`` (in :mod:`.stylize` and :mod:`.model_file`)
works on a fresh install with no download.
"""
