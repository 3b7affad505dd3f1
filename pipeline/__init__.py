"""kc: run Kaggle competitions end to end."""

__version__ = "0.1.0"
