"""Neural style transfer engine: VGG features, Gatys optimisation, fast (Johnson) networks.

A pure library: no sockets, no GIMP. Images are float32 tensors of shape [1, 3, H, W]
with RGB values in [0, 1]; alpha, where present, travels separately as [1, 1, H, W].
"""
