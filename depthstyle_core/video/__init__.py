"""Video: optical flow between frames, warping, the warping error (Lai et al. 2018), a stylised clip held
still by flow (temporal consistency), and video files in and out."""
