"""Linear-Gaussian models (numpy and scipy only; no torch).

Factor analysis as the field reads it: :mod:`.rotations` (varimax, quartimax, promax,
oblimin, quartimin, geomin), :func:`suggest_n_factors` (parallel analysis, BIC,
held-out likelihood) and the fit statistics and tests of :mod:`._fit_statistics`
(chi-square, RMSEA, TLI, KMO, Bartlett's sphericity), re-exported here.
"""

from ._fit_statistics import FitStatistics, bartlett_sphericity, fit_statistics, kmo
from ._interpret import FactorSolution, factor_scores, factor_solution
from .factor_analysis import FactorAnalysis
from .linear_autoencoder import LinearAutoencoder
from .n_factors import NFactorsResult, suggest_n_factors
from .pca import PCA
from .ppca import PPCA
from .rotations import ROTATIONS, Rotation, align_factors, rotate

__all__ = ["PCA", "PPCA", "FactorAnalysis", "LinearAutoencoder",
           "suggest_n_factors", "NFactorsResult", "rotate", "align_factors", "Rotation",
           "ROTATIONS", "factor_solution", "FactorSolution", "factor_scores",
           "fit_statistics", "FitStatistics", "kmo", "bartlett_sphericity"]
