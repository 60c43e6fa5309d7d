"""``python -m dashboard`` → the package CLI (see ``dashboard/cli.py``)."""

import sys

from dashboard.cli import main

if __name__ == "__main__":
    sys.exit(main())
