"""Convert an official JSRT / Montgomery / Shenzhen download into cxreg's layout.

    python scripts/prepare_data.py --dataset JSRT --source ~/Downloads/JSRT --out data/

Same as ``cxreg prepare-data``; see ``bundle/prepare.py`` for the exact processing.
"""

import sys

from bundle.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]]))
