"""Turning generated crops and landmarks into full-resolution frames (numpy and OpenCV only).

No TensorFlow here: `mobile_demo/` imports this package as it is. `hybrid` (the default) warps the
photo's own lower face with the predicted landmarks and takes only the inside of an opening mouth
from VG-net; `vgnet` pastes VG-net's frames back where the model says the face changes.
"""

RENDERERS = ("hybrid", "vgnet")
