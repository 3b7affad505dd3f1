"""`python -m pipeline` runs the kc command line."""

from pipeline.cli import main

main()
