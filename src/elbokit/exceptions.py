"""Exception types raised by elbokit.

Every error a user can cause (bad data, a bad file, a bad hyper-parameter) is an
:class:`ElbokitError`. The subclasses also derive from the built-in type a Python
user would expect (``ValueError``, ``FileNotFoundError``), so ``except ValueError``
keeps working. The CLI turns any ``ElbokitError`` into one line on stderr and exit
code 2.
"""

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "ElbokitError",
    "DataError",
    "DataFileNotFoundError",
    "ParameterError",
    "ModelFileError",
    "TrainingError",
    "RunLockedError",
    "SaveError",
    "MissingDependencyError",
    "TrackingError",
    "NoDensityError",
    "PosteriorCollapseWarning",
    "DataMismatchWarning",
    "ConvergenceWarning",
]


class ElbokitError(Exception):
    """Base class of every error elbokit raises on purpose."""


class DataError(ElbokitError, ValueError):
    """The data has the wrong shape, type, values or file format."""


class DataFileNotFoundError(ElbokitError, FileNotFoundError):
    """A data file or directory does not exist."""


class ParameterError(ElbokitError, ValueError):
    """A hyper-parameter is out of its valid range or of the wrong type."""


class ModelFileError(ElbokitError, ValueError):
    """A saved model directory is missing, truncated, tampered with or too new."""


class TrainingError(ElbokitError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class RunLockedError(ElbokitError, RuntimeError):
    """Another elbokit process is writing the same run directory."""


class SaveError(ElbokitError, OSError):
    """A file could not be written (disk full, a file-size limit, an I/O error): the
    message names the file and the free space; nothing that was saved before is lost."""


class MissingDependencyError(ElbokitError, ImportError):
    """An optional package a feature needs is not installed (the message names the
    ``pip install`` line)."""


class TrackingError(ElbokitError, RuntimeError):
    """An experiment tracker (MLflow) refused or could not be reached."""


class NoDensityError(ParameterError):
    """The model defines no density (the deterministic Autoencoder): no log p(x), no
    ELBO; compare it by reconstruction error."""


class PosteriorCollapseWarning(UserWarning):
    """Most latent units of a VAE are inactive: q(z|x) is close to the prior for them."""


class DataMismatchWarning(UserWarning):
    """The data given to ``report`` or ``evaluate`` are not those the run was fitted on
    (their digests differ): the message names both."""
