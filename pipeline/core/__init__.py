"""The base layer: errors, the competition description, metrics, the workspace, datasets, progress."""
