"""The one exception type gpupq raises for bad input or impossible settings."""


class GpupqError(ValueError):
    """Bad input or settings. The message is one line, fit to show a user as it is."""


class EmptyInput(GpupqError):
    """A file that holds no vectors (0 rows): refused alone, skipped within a collection."""
