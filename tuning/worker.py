"""`python -m tuning.worker`: one local worker process of a distributed search. The command lives in `tuning.cli.worker`; this front door keeps its name."""

import sys

from tuning.cli.worker import main

if __name__ == "__main__":
    sys.exit(main())
