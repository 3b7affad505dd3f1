"""The `kc` command line: the only layer that parses options and prints."""
