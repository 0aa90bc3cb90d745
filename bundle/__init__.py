# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""cxreg: deep-learning deformable registration of 2D chest X-rays, packaged as MONAI bundles.

Conventions (see docs/conventions.md): arrays are (row, col) = (H, W); a displacement field is a
(B, 2, H, W) tensor in pixels, channel 0 along rows (down), channel 1 along columns (right), used as
a pull-back: ``warped[p] = moving[p + u(p)]``.
"""

__version__ = "0.5.12"
