"""`python3 -m profiler` is the `inferprof` command (handy before a shell finds the console script)."""

import sys

from profiler.cli import main

sys.exit(main())
