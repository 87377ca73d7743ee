"""`python -m tuning.run`: the service: search, retrain, test once, export. The command lives in `tuning.cli.run`; this front door keeps its name."""

import sys

from tuning.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
