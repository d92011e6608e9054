"""``python -m nestbench``: the command line, as the ``nestbench`` script runs it.

Code that starts nestbench commands (the sweep's trials) names this package, not the CLI module,
so it does not depend on how the CLI is built.
"""

import sys

from nestbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
