"""Exceptions for user mistakes. Each message names the argument, file/line or key, and expected vs received.

The CLI turns any GraphnetError into a one-line message and a non-zero exit (``--debug`` shows the traceback).
"""


class GraphnetError(Exception):
    """Base class of every error graphnet raises for bad input."""


class GraphError(GraphnetError, ValueError):
    """Invalid graph input: shapes, node ids, edge weights."""


class ConfigError(GraphnetError, ValueError):
    """Invalid experiment configuration: unknown key, bad type or value, unknown name."""


class DataError(GraphnetError, ValueError):
    """A dataset file is missing, malformed or cannot be obtained (names dataset, file and line)."""


class ChecksumError(DataError):
    """A file's sha256 differs from the catalog's (names the file, expected and actual hash)."""


class CheckpointError(DataError):
    """A checkpoint cannot be loaded safely (corrupt, tampered, or from another model); names the file."""
