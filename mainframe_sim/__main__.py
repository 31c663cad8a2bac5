"""``python -m mainframe_sim``: see :mod:`mainframe_sim.cli`."""

import sys

from mainframe_sim.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
