"""The small Darknet cfgs the tests build networks from, in one place: import them (``from darknet_cfgs
import MINI``) rather than pasting another. Each is fast to build at its size; what a test relies on is
said next to it."""

# A miniature cfg using every section type (test_darknet_cfg: its property tests mutate it, and its
# error tests replace lines by their exact text).
MINI = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 3,4,5
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=2
num=6
jitter=.3
ignore_thresh = .7
truth_thresh = 1
random=1

[route]
layers = -3

[upsample]
stride=2

[route]
layers = -1, 0

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 0,1,2
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=2
num=6
"""


# Two convolutions and a [yolo]: the smallest full network, for the .weights layout.
TWO_CONVS = """[net]
width=32
height=32
channels=3
[convolutional]
batch_normalize=1
filters=2
size=3
stride=1
pad=1
activation=leaky
[convolutional]
filters=12
size=1
stride=1
pad=1
activation=linear
[yolo]
mask=0,1
anchors=4,5, 6,7
classes=1
"""

# TWO_CONVS's floats, counted by hand from the cfg: conv 0 has BatchNorm (bias, scale, mean, variance:
# 4 x 2) and 2 x 3 x 3 x 3 weights; conv 1 has 12 biases and 12 x 2 x 1 x 1 weights.
TWO_CONVS_FLOATS = [4 * 2 + 2 * 3 * 3 * 3, 12 + 12 * 2]  # [62, 36]


# yolov3-tiny's layout at a fraction of its channels: maxpool / route / upsample, strides 4 and 8
# (test_modelfile).
SMALL_TINY = """[net]
width=64
height=64
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[maxpool]
size=2
stride=1
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=3,4,5
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
[route]
layers=-4
[upsample]
stride=2
[route]
layers=-1,2
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
"""
