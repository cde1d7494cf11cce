"""`python -m wsideid`: the same entry point as the `wsideid` console script, for
environments where the script's folder is not on PATH (a venv used without activating it)."""
import sys

from wsideid.cli import main

sys.exit(main())
