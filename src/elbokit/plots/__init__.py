"""Figures (matplotlib, Agg backend, PNG written atomically); this package only draws.

Each function takes any fitted model that implements the model protocol
(:class:`elbokit.protocol.LatentVariableModel`: a VAE, a linear-Gaussian model, or a
new kind) and reads it through that protocol only; the numbers it draws come from
the models and from :mod:`elbokit.evaluate` and :mod:`elbokit.linear._interpret`.

- :mod:`~elbokit.plots.images`: sample grids, reconstructions, latent traversals, the
  2-D manifold (Kingma & Welling 2014, fig. 4), per-pixel uncertainty, completions of
  a hidden region (a model with ``complete``: the VAE), latent arithmetic, the AE-vs-VAE
  page, and :func:`all_figures` for a model of images;
- :mod:`~elbokit.plots.latent`: the scatter of posterior means, KL per dimension;
- :mod:`~elbokit.plots.tables`: loadings, communalities, eigenvalues, reconstruction
  error per feature, and :func:`table_figures` for a model of a table;
- :mod:`~elbokit.plots.factors`: the parallel-analysis scree and VBPCA's relevance.
"""

from ._base import (Figure, bar_figure, curves_figure, decode_mean, encode_mean,
                    feature_labels, grey_shape, image_grid)
from .factors import parallel_scree_figure, relevance_figure
from .images import (MAX_CLASSES_SHOWN, ae_vae_figure, all_figures, class_samples_figure,
                     completions_figure, conditional_figures, latent_arithmetic_figure, manifold_figure,
                     reconstructions_figure, samples_figure, traversals_figure,
                     uncertainty_figure)
from .latent import latent_scatter_figure
from .tables import (communality_figure, loadings_figure, reconstruction_error_figure,
                     scree_figure, table_figures)

__all__ = ["Figure", "MAX_CLASSES_SHOWN", "ae_vae_figure", "all_figures", "bar_figure",
           "class_samples_figure", "communality_figure", "completions_figure",
           "conditional_figures",
           "curves_figure", "decode_mean", "encode_mean", "feature_labels", "grey_shape",
           "image_grid", "latent_arithmetic_figure", "latent_scatter_figure",
           "loadings_figure", "manifold_figure", "parallel_scree_figure",
           "reconstruction_error_figure", "reconstructions_figure", "relevance_figure",
           "samples_figure", "scree_figure", "table_figures", "traversals_figure",
           "uncertainty_figure"]
