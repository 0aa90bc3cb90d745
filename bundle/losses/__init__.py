# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
from .contour import ContourLoss, SegmentationLoss, laplacian_edges

__all__ = ["ContourLoss", "SegmentationLoss", "laplacian_edges"]
