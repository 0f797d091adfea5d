"""Errors raised for bad input; each message says what is wrong and what to do."""


class CondensationError(ValueError):
    """A request that cannot be carried out as given; nothing was changed."""
