"""Submissions: format checks, the written files and their log with uploads, and ensembles of runs."""
