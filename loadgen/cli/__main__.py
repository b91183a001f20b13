"""``python -m loadgen.cli``: the ``loadgen`` command without its console script (tests and subprocesses use it)."""

import sys

from loadgen.cli import main

sys.exit(main())
