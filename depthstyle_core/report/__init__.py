"""The structure report: edge F1, SSIM, depth agreement and the figure that shows them."""
