"""``python -m loadgen.locust [locust options]``: Locust with the bundled locustfile (unless ``-f`` is given)."""

import sys
from pathlib import Path

from locust.main import main

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a in ("-f", "--locustfile") or a.startswith("--locustfile=") for a in args):
        args = ["-f", str(LOCUSTFILE), *args]
    sys.argv = ["locust", *args]
    sys.exit(main())
