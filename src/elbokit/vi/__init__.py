"""Mean-field variational inference (coordinate ascent on a factorised q).

:class:`VBPCA` is Bishop's variational Bayesian PCA with automatic relevance
determination; numpy and scipy only.
"""

from .vbpca import VBPCA

__all__ = ["VBPCA"]
