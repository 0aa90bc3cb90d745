#!/usr/bin/env python
# Copyright (c) cxreg contributors. Licensed under the Apache License, Version 2.0.
"""Show or change the settings saved with a registration model (weights untouched).

    python scripts/model_settings.py models/registration_universal.pt                  # show
    python scripts/model_settings.py models/registration_universal.pt fix_folds=true   # change, in place

Values are JSON (true, 7, "equalize"); only fields of bundle.registration.RegSettings are accepted, and the
file is rewritten atomically (bundle.workflow.save_atomic).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bundle.registration import RegSettings, load_registration  # noqa: E402
from bundle.workflow import safe_load, save_atomic  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a registration model file written by cxreg")
    ap.add_argument("changes", nargs="*", help="KEY=JSON_VALUE")
    a = ap.parse_args(argv)
    load_registration(a.model)  # one-line error for a file that is not a registration model
    ck = safe_load(a.model)
    settings = asdict(RegSettings.from_dict(ck["settings"]))
    names = {f.name for f in fields(RegSettings)}
    for c in a.changes:
        key, sep, val = c.partition("=")
        if not sep or key not in names:
            ap.error(f"{c}: expected KEY=VALUE with KEY one of {sorted(names)}")
        try:
            settings[key] = json.loads(val)
        except json.JSONDecodeError:
            ap.error(f"{c}: the value is not JSON (use true/false, numbers or \"strings\")")
    if a.changes:
        try:
            settings = asdict(RegSettings.from_dict(settings))  # checks and normalises (e.g. "false" -> False)
        except (TypeError, ValueError) as e:
            ap.error(str(e))
        ck["settings"] = settings
        save_atomic(ck, a.model)
        load_registration(a.model)
    print(json.dumps(settings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
