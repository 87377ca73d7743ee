"""`python -m tuning.lr_find`: the learning-rate range test. The command lives in `tuning.cli.lr_find`; this front door keeps its name."""

import sys

from tuning.cli.lr_find import main

if __name__ == "__main__":
    sys.exit(main())
