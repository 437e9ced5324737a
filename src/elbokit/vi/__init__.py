"""Mean-field variational inference (coordinate ascent on a factorised q).

:class:`VBPCA` is Bishop's variational Bayesian PCA with automatic relevance
determination (missing values as in Ilin & Raiko, 2010); numpy and scipy only.
"""

from .vbpca import VBPCA

__all__ = ["VBPCA"]
