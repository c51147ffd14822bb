"""The errors twitchwatch raises, each saying what failed and what to do.

    TwitchwatchError
     +-- UsageError            bad command-line usage               (exit 2)
     +-- ConfigError           invalid configuration: names the key (exit 2)
     +-- HelixError            the Helix API refused or failed
     |    +-- AuthError        credentials rejected by the token endpoint
     |    +-- NotFoundError    a login, game or clip that does not exist
     +-- CaptureError          streamlink could not capture the stream
     |    +-- OfflineError     the channel is not live (no verdict, no flag)
     +-- DecodeError           too little of the capture could be decoded
     +-- ModelError            no usable model (missing, truncated, wrong shape)
     +-- DatasetError          the dataset is missing or unusable
     +-- StoreError            the database is unreachable or not migrated
     +-- ReviewError           no such flag or queued check, or it has a verdict already

The CLI maps UsageError and ConfigError to exit code 2 and every other
TwitchwatchError to exit code 1, printing the message as one line.
"""

from __future__ import annotations


class TwitchwatchError(Exception):
    """Base of every error twitchwatch reports to its user."""

    exit_code = 1


class UsageError(TwitchwatchError):
    exit_code = 2


class ConfigError(TwitchwatchError):
    exit_code = 2


class HelixError(TwitchwatchError):
    """The Helix API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthError(HelixError):
    pass


class NotFoundError(HelixError):
    pass


class CaptureError(TwitchwatchError):
    pass


class OfflineError(CaptureError):
    pass


class DecodeError(TwitchwatchError):
    pass


class ModelError(TwitchwatchError):
    pass


class DatasetError(TwitchwatchError):
    pass


class StoreError(TwitchwatchError):
    pass


class ReviewError(TwitchwatchError):
    """A human verdict that cannot be recorded: no such flag or queued check, or one given already."""
