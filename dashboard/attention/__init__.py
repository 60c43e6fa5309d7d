"""Attention research tools: where a VLM looks while it writes each token.

- ``adapters``: per-family mapping of image-token positions to patch grids (+ original-image boxes)
- ``hooks``: the one capture mechanism (which parts to tap, for how long); ``capture``: its reductions —
  memory-lean attention rows and the logit lens — and ``capture_generate``
- ``overlay``: heatmap on the image (OpenCV colormap + alpha blend)
- ``pointing``: does the answer token's attention peak fall inside the object's box
- ``analysis``: the page-level calls tying these to the model pool; ``charts``: Plotly figures
"""
