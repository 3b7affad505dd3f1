"""The few errors kc raises; the CLI prints each as one `Error:` line."""


class KcError(Exception):
    """Base of every error a user can cause or fix; its message says what to do next."""

    exit_code = 1  # what the CLI exits with (click's way: the exception carries its code)


class UsageError(KcError):
    """A bad option value or an unknown name."""


class DataError(KcError):
    """A data file is missing, malformed or fails validation."""


class KaggleError(KcError):
    """The Kaggle API refused a call or could not be reached."""


class SubmissionError(KcError):
    """A submission file does not match the competition's format."""
