"""The one exception type gpupq raises for bad input or impossible settings."""


class GpupqError(ValueError):
    """Bad input or settings. The message is one line, fit to show a user as it is."""
