"""Errors meant for people: the CLI prints them as one line, no traceback.

Each message names the thing (file, key, sample, plugin), what was found and
what is accepted.
"""


class MMCoreError(Exception):
    """An error whose message is shown to the user as is."""


class ConfigError(MMCoreError, ValueError):
    """A recipe or override is wrong: unknown key, bad type, unknown name."""


class DataError(MMCoreError, ValueError):
    """An input file or sample cannot be used."""


class PluginError(MMCoreError, LookupError):
    """A plugin, modality, policy, target or dataset is missing or broken."""


class StorageError(MMCoreError, OSError):
    """A file could not be written (full disk, quota, permissions); what was on disk before is intact."""


class DivergedError(MMCoreError, ArithmeticError):
    """Training produced non-finite losses or weights; the last good checkpoint is kept."""
