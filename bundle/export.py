# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""``cxreg export`` (work in progress)."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register the ``export`` sub-command on the ``cxreg`` sub-parsers."""
    p = sub.add_parser("export", help="(not implemented yet)")
    p.set_defaults(func=lambda a: (_ for _ in ()).throw(NotImplementedError("cxreg export is not implemented yet")))
