"""The error every bad flag or combination of flags raises (a leaf: no Beam, so that a
command that only reads imports none)."""


class UsageError(ValueError):
    """A bad flag or combination of flags; the message says what to do."""
