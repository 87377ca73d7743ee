"""`python -m tuning.report`: a run's key figures and leaderboard. The command lives in `tuning.cli.report`; this front door keeps its name."""

import sys

from tuning.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
