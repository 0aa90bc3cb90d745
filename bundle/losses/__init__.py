# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
from .contour import ContourLoss, SegmentationLoss, laplacian_edges
from .deform import TotalVariationLoss
from .image import GlobalNCCLoss
from .label import MaskCrossEntropyLoss, ShapeEncoderLoss
from .registration import RegistrationLoss

__all__ = [
    "ContourLoss",
    "SegmentationLoss",
    "laplacian_edges",
    "GlobalNCCLoss",
    "TotalVariationLoss",
    "MaskCrossEntropyLoss",
    "ShapeEncoderLoss",
    "RegistrationLoss",
]
