# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
from .autoencoder import MaskAutoEncoder, ShapeEncoder
from .registration import DFSA, MultiScaleRegNet
from .segmentation import LungSegNet, SegEnsemble, SegShiftTTA

__all__ = ["LungSegNet", "SegEnsemble", "SegShiftTTA", "MaskAutoEncoder", "ShapeEncoder", "DFSA", "MultiScaleRegNet"]
