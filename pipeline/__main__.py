"""`python -m pipeline` runs the kc command line."""

from pipeline.cli.app import main

main()
