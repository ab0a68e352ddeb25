"""Errors raised for bad input data. Each carries one specific, human-readable message."""


class DataError(Exception):
    """Base class: the input data cannot be used as it is."""


class MissingDataError(DataError):
    """A path that should hold an archive or a folder does not exist."""


class CorruptArchiveError(DataError):
    """The archive is truncated, not gzip/tar, or otherwise unreadable."""


class UnsafeArchiveError(DataError):
    """The archive holds a member we refuse to touch (link, device, path escape)."""


class UnsafePickleError(DataError):
    """A pickled batch asks for something other than plain data."""


class RecordError(DataError):
    """A batch's records have the wrong size, count, dtype or label range."""


class ChecksumError(DataError):
    """A downloaded file's checksum differs from the published one."""


class DownloadError(DataError):
    """A download failed (offline, refused, HTTP error)."""


class DataLeakageError(DataError):
    """Test images also occur in the training split beyond the tolerance."""


class UnknownNameError(KeyError):
    """A dataset, profile or layout name that is not defined; the message lists the known ones."""
