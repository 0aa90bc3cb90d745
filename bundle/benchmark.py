# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg benchmark`` (work in progress)."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register the ``benchmark`` sub-command on the ``cxreg`` sub-parsers."""
    p = sub.add_parser("benchmark", help="(not implemented yet)")
    p.set_defaults(func=lambda a: (_ for _ in ()).throw(NotImplementedError("cxreg benchmark is not implemented yet")))
