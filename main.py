"""Entry points: the command line (`python main.py --help`)."""

from __future__ import annotations

import sys

from workflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
