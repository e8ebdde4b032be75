"""One exceptions module. Messages are one line: the rule, the bad value, what to do."""


class SweepError(Exception):
    """Base class: bad input or a missing resource. CLIs print str(err) and exit 2."""


class ConfigError(SweepError, ValueError):
    """An invalid configuration value."""


class DatasetNotFoundError(SweepError, FileNotFoundError):
    """A dataset's files are not where we looked; the message says how to get them."""


class CheckpointError(SweepError):
    """A checkpoint cannot be read."""
