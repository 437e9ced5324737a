"""Semi-supervised learning with a deep generative model: model M2 of Kingma, Rezende,
Mohamed & Welling (2014), "Semi-supervised learning with deep generative models".

Generative model: p(y) = Cat(1/K), p(z) = N(0, I), p(x|y, z) (the conditional VAE's
decoder). Inference: q(z|x, y) (the conditional VAE's encoder, on [x, one-hot y]) and
a classifier q(y|x) (an MLP). A labeled row's bound is the conditional VAE's ELBO
L(x, y) <= log p(x|y) (the constant log p(y) left out, as in the paper's eq. 6); an
unlabeled row's, with y a latent variable (eq. 7),

    U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)),

computed by enumerating the K classes (the preset encoders compute a row's part of their
first layer, or their convolutions, once for the K classes:
:meth:`~elbokit.nn.model.VAENetwork.encode_posterior_each`; the decoder runs K times). The
objective maximised (eq. 9, signs flipped):

    J = sum_labeled L(x, y) + sum_unlabeled U(x) + a * E_labeled[log q(y|x)],

E_labeled the mean over the N_l labeled rows and a = ``alpha`` x N (N the training
rows). The paper's a = 0.1 N is ``alpha=0.1``. The default, "auto", grows with the
features d of the data, 3/64 x d (:func:`~elbokit.nn.config.auto_alpha`, which gives the
reason and the held-out figures it was chosen on, the test sets untouched): 3 for digits,
36.75 for Fashion-MNIST, where the earlier fixed 1.0 (chosen on digits alone) left M2 on
the pixels below a logistic regression on the labeled rows.

The training loop minimises -J / N by minibatches, each of which carries labeled rows
(the paper's practice): at least ``LABELED_SHARE`` (10%) of it, or the labeled rows'
share of the data where that is larger, drawn uniformly from the labeled rows (cycled);
the rest drawn the same way from the unlabeled rows. The minibatch's loss weights each
kind's mean by its share of the data, (N_l / N) mean L + alpha mean log q(y|x) +
(N_u / N) mean U, an unbiased estimate of J / N (:class:`SemiSupervisedObjective`);
per row, J / N is the mean of U(x), or for a labeled row L(x, y) + alpha (N / N_l)
log q(y|x). (Without this, a minibatch of 128 of Fashion-MNIST with 100 labels held
0.2 labeled rows on average.) The automatic validation split (the VAE's
``validation_fraction``) holds out unlabeled rows only: every labeled row trains.
On digits the share hardly matters (held-out accuracy, as above at alpha 1: 89.9% at
10%, 90.6% at 25%, 90.2% at 50%, 90.2% at the data's own 3.5%), where the labeled rows
are 3.5% of the rows; it is for data such as Fashion-MNIST's 0.17%.

The network is the conditional VAE's (:class:`~elbokit.nn.model.VAENetwork`, the
code of y as the last K columns of x) with the classifier beside it
(:class:`SemiSupervisedNetwork`); an unlabeled row travels with an all-zero code.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os

import numpy as np
import torch
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_features, _num_samples
from torch import nn

from .._anndata import reads_anndata
from .._math import logsumexp
from .._validation import check_seed
from ..exceptions import DataError, ParameterError
from ..persistence import model_file
from . import _vae_settings as settings_of
from . import saved
from ._conditioning import labels_of
from ._estimator import sizes
from ._settings import estimator_default
from .config import (LATENT_DIM, ArchitectureConfig, SemiSupervisedConfig, TrainingConfig,
                     auto_alpha, config_kwargs)
from .model import VAENetwork
from .objectives import get_estimator
from .objectives.semisupervised import SemiSupervisedObjective
from .vae import VAE

UNLABELED = -1  # scikit-learn's mark of an unlabeled row (sklearn.semi_supervised)
SCORE_IMPORTANCE = 100  # draws of z per class behind score_samples' log p(x)


class SemiSupervisedNetwork(VAENetwork):
    """The conditional VAE's module (c = K, the classes) plus the classifier q(y|x), an
    MLP of hidden sizes ``classifier_hidden`` on x as the encoder sees it."""

    def __init__(self, config: ArchitectureConfig, prior=None, *,
                 classifier_hidden=(500,), **modules):
        super().__init__(config, prior, **modules)
        widths = (config.n_features, *classifier_hidden)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        self.classifier = nn.Sequential(*layers, nn.Linear(widths[-1], config.condition_dim))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """log q(y|x), (B, K), of rows x (B, d) (or (B, d + K): the code is ignored)."""
        if x.shape[-1] != self.config.n_features:
            x = self.split_condition(x)[0]
        x = self.likelihood.encoder_input(self.standardized(x))
        return torch.log_softmax(self.classifier(x), dim=-1)


class _ShareOf:
    """A ``progress(rows)`` callback for K passes over the same rows: reports the rows
    of one pass, in whole rows."""

    def __init__(self, progress, k: int):
        self.progress, self.k, self.done, self.told = progress, k, 0, 0

    def __call__(self, rows: int) -> None:
        self.done += rows
        step = self.done // self.k - self.told
        if step:
            self.told += step
            self.progress(step)


def unlabeled_rows(y, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """(mask of the unlabeled rows (n,), the labels of the others): y holds class labels
    (integers or strings) and -1 for an unlabeled row (string labels: an object array
    with the integer -1, scikit-learn's convention)."""
    values = np.asarray(y)
    if values.ndim != 1 or values.shape[0] != n:
        raise DataError(f"{name} must be class labels of shape ({n},), -1 for an unlabeled "
                        f"row; got shape {values.shape}")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{name} holds {values[row]} at row {row}: mark an unlabeled row with "
                        f"{UNLABELED}")
    if values.dtype.kind == "O":
        mask = np.array([not isinstance(v, str) and v == UNLABELED for v in values.tolist()])
    elif values.dtype.kind in "iuf":
        mask = values == UNLABELED
    else:
        mask = np.zeros(n, dtype=bool)
    labels = values[~mask]
    if labels.dtype.kind == "O":
        labels = labels.astype(str) if all(isinstance(v, str) for v in labels.tolist()) \
            else labels
    return mask, labels_of(labels, len(labels), name) if len(labels) else labels


class SemiSupervisedVAE(VAE):
    """Model M2 of Kingma et al. (2014): a conditional VAE whose class y is a latent
    variable of the unlabeled rows, with a classifier q(y|x); see
    :mod:`elbokit.nn.semisupervised` for the objective and the weight ``alpha``.

    ``fit(X, y)``: y holds the class labels, -1 for an unlabeled row (scikit-learn's
    semi-supervised convention); the classes (``classes_``) are those of the labeled
    rows, at least 2. ``predict_proba(X)`` and ``predict(X)`` come from q(y|x);
    ``score_samples(X)`` is log p(x) = log sum_y p(y) p(x|y), each p(x|y) importance
    sampled; ``sample(n, y=...)`` generates for given classes (drawn from p(y) when y is
    None). Without y every question of the model protocol sums y out (so evaluate,
    ``compare`` and the report read it as any VAE): ``log_likelihood_samples`` and
    ``decode`` under p(y), ``elbo`` (the bound U(x) - log K), ``encode``,
    ``posterior_moments``/``posterior_samples`` (the mixture sum_y q(y|x) q(z|x, y)),
    ``reconstruct`` and ``kl_to_prior`` (with KL(q(y|x) || p(y))) under q(y|x); with y,
    the conditional VAE's answers. Every VAE setting applies (``conditional`` is always
    True), plus ``classifier_hidden`` and ``alpha``
    (:class:`~elbokit.nn.config.SemiSupervisedConfig`). Saved as one commit
    (:meth:`save`, kind "semisupervised-vae"), loaded by :func:`elbokit.models.load_model`.
    M1+M2 (the paper's M2 on the codes of an unsupervised VAE, M1) is the scikit-learn
    pipeline ``make_pipeline(VAE(...), SemiSupervisedVAE(likelihood="gaussian", ...))``:
    a plain VAE ignores y and ``transform`` gives its posterior means.

    Examples
    --------
    >>> import numpy as np
    >>> from elbokit.data import load
    >>> from elbokit.nn import SemiSupervisedVAE
    >>> digits = load("digits")
    >>> y = np.full(len(digits.train), -1)
    >>> y[:100] = digits.train_labels[:100]                  # 100 labeled rows
    >>> model = SemiSupervisedVAE(8, hidden=(64,), classifier_hidden=(64,), epochs=2,
    ...                           progress=False).fit(digits.train, y)
    >>> model.predict_proba(digits.test[:3]).shape
    (3, 10)
    """

    kind = "semisupervised-vae"  # model.json's kind (read by SemiSupervisedVAE.load)
    noun = "SemiSupervisedVAE"
    conditional = True  # not a setting: M2 is a conditional VAE
    accepts_missing = False
    keeps_sparse = False

    def __init__(self, latent_dim: int = LATENT_DIM, **settings):
        # the signature (below) is the VAE's less ``conditional``, plus SemiSupervisedConfig's
        unknown = set(settings) - set(_PARAMETERS)
        if unknown:
            raise TypeError(f"SemiSupervisedVAE got unexpected argument(s) {sorted(unknown)}")
        self._store_settings({**_DEFAULTS, **settings, "latent_dim": latent_dim})

    # ------------------------------------------------------------------ fitting hooks

    @reads_anndata
    def fit(self, X, y=None, *, validation=None, **options):
        """Fit M2 on X (n, d) and y (n,): class labels, -1 for the unlabeled rows (see
        :meth:`VAE.fit` for ``validation`` (a pair (X_val, y_val), -1 allowed) and the
        other options). Without ``validation`` the VAE's ``validation_fraction`` of the
        rows is held out from the unlabeled rows only (seeded by ``seed``; their indices
        in ``validation_rows_``): every labeled row trains. Data with fewer unlabeled
        rows than that share hold out as the VAE does, from all rows."""
        self.semisupervised_ = SemiSupervisedConfig(
            classifier_hidden=sizes(self.classifier_hidden), alpha=self._alpha(X))
        if getattr(self, "top_latent_dim", 0):
            raise ParameterError("SemiSupervisedVAE has one stochastic layer: top_latent_dim "
                                 "must be 0")
        if y is None:
            raise DataError("SemiSupervisedVAE.fit(X, y) needs y: class labels, -1 for an "
                            "unlabeled row")
        n = _num_samples(X)
        held_out = None if validation is not None else self._held_out_rows(y, n)
        if held_out is not None:
            fitted = np.setdiff1d(np.arange(n), held_out)
            validation = (_safe_indexing(X, held_out), _safe_indexing(np.asarray(y), held_out))
            X, y = _safe_indexing(X, fitted), _safe_indexing(np.asarray(y), fitted)
        self._fitting, self._split_of = True, None if held_out is None else n
        try:
            super().fit(X, y, validation=validation, **options)
        finally:
            self._fitting, self._split_of = False, None
        if held_out is not None:
            self.validation_rows_ = held_out
        return self

    def _alpha(self, X):
        """``alpha``, "auto" resolved: :func:`~elbokit.nn.config.auto_alpha` of X's
        features."""
        if not (isinstance(self.alpha, str) and self.alpha == "auto"):
            return self.alpha
        try:
            return auto_alpha(_num_features(X))
        except TypeError:  # not a table: the VAE's check of X names the problem
            return auto_alpha(1)

    def _held_out_rows(self, y, n: int) -> np.ndarray | None:
        """The rows of the VAE's validation split (its ``validation_fraction`` of n rows,
        "auto" resolved as for the VAE) drawn from the unlabeled rows, seeded; None
        where the VAE holds nothing out or the unlabeled rows are too few."""
        mask, _ = unlabeled_rows(y, n)
        fraction = self._training(n_rows=n).validation_fraction
        count = settings_of.held_out_rows(n, fraction)
        if not count or int(mask.sum()) < count:
            return None
        unlabeled = np.flatnonzero(mask)
        order = np.random.default_rng(self.seed + 7).permutation(len(unlabeled))
        return np.sort(unlabeled[order[:count]])

    def _training(self, *, likelihood: str | None = None, n_rows: int | None = None,
                  validation_given: bool = False, **options) -> TrainingConfig:
        """The VAE's (``options``: its other keywords), but a fit whose rows M2 split
        itself (:meth:`fit`) resolves its settings as the VAE's split of all the rows
        would (the same fraction, patience and epochs)."""
        if getattr(self, "_split_of", None) is not None:
            n_rows, validation_given = self._split_of, False
        return super()._training(likelihood=likelihood, n_rows=n_rows,
                                 validation_given=validation_given, **options)

    def _fit_condition(self, y, n: int) -> np.ndarray:
        mask, labels = unlabeled_rows(y, n)
        classes = np.unique(labels)
        if len(classes) < 2:
            raise DataError(f"y labels {len(classes)} class(es) in {n} rows (the rest -1, "
                            "unlabeled): the classes of q(y|x) are those of the labeled rows, "
                            "so label rows of at least 2 classes")
        self.classes_, self.n_condition_ = classes, len(classes)
        self._rows = (int((~mask).sum()), n)  # (labeled, all) training rows
        return self._condition(y, n)

    def _condition(self, y, n: int, name: str = "y") -> np.ndarray:
        """The coded y; at fit an unlabeled row (-1) gets an all-zero code."""
        if not getattr(self, "_fitting", False) or y is None:
            return super()._condition(y, n, name)
        mask, _ = unlabeled_rows(y, n, name)
        codes = np.zeros((n, len(self.classes_)), dtype=np.float32)
        if not mask.all():
            codes[~mask] = super()._condition(np.asarray(y)[~mask], int((~mask).sum()), name)
        return codes

    def _objective(self, training: TrainingConfig) -> SemiSupervisedObjective:
        estimator = get_estimator(super()._objective(training), training)
        return SemiSupervisedObjective(estimator, self.semisupervised_.alpha, *self._rows,
                                       n_classes=len(self.classes_))

    def _build(self, architecture: ArchitectureConfig, seed: int, prior=None,
               **modules) -> SemiSupervisedNetwork:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return SemiSupervisedNetwork(architecture, prior, classifier_hidden=self
                                         .semisupervised_.classifier_hidden, **modules)

    def check_fit(self, X, what: str = "test", *, reference=None, y=None) -> None:
        """:meth:`VAE.check_fit` at the classes q(y|x) predicts (y may hold -1)."""
        super().check_fit(X, what, reference=reference, y=self.predict(X))

    # ------------------------------------------------------------------ the classifier

    @torch.no_grad()
    def predict_log_proba(self, X) -> np.ndarray:
        """log q(y|x), (n, K), columns in the order of ``classes_``."""
        self._check_fitted()
        x = self._tensor(self._check_X(X, "X", reset=False))
        return self._batched(self.model_.classify, x).cpu().numpy().astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        """q(y|x), (n, K): each row sums to 1, columns in the order of ``classes_``."""
        proba = np.exp(self.predict_log_proba(X))
        return proba / proba.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The most probable class under q(y|x), (n,), labels of ``classes_``."""
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]

    # ------------------------------------------------------------------ y marginalised
    #
    # Without y, every question of the model protocol is answered for the model of x
    # alone: y summed out under p(y) = 1/K (the density, the decoder) or under q(y|x)
    # (the posterior of z, the bound), so evaluate, compare and the report read M2 as
    # any VAE. With y, the conditional VAE's answer for those classes.

    def _per_class(self, method, X, **options) -> np.ndarray:
        """method(X, y=c, **options) for each class c of ``classes_``, stacked on
        axis 1: (n, K, ...)."""
        n = _num_samples(X)
        return np.stack([method(X, y=np.full(n, label), **options)
                         for label in self.classes_.tolist()], 1)

    def log_likelihood_samples(self, X, *, n_importance: int = 5000, batch_size=None,
                               random_state: int = 0, progress=None, y=None) -> np.ndarray:
        """log p(x) = log sum_y p(y) p(x|y), (n,), each log p(x|y) importance sampled with
        ``n_importance`` draws of q(z|x, y) (the same seed for each class); with ``y``,
        log p(x|y) of those classes. ``progress(rows)`` counts rows of X."""
        if y is not None:
            return super().log_likelihood_samples(
                X, n_importance=n_importance, batch_size=batch_size,
                random_state=random_state, progress=progress, y=y)
        per_class = self._per_class(super().log_likelihood_samples, X,
                                    n_importance=n_importance, batch_size=batch_size,
                                    random_state=random_state,
                                    progress=None if progress is None else
                                    _ShareOf(progress, len(self.classes_)))
        return logsumexp(per_class, axis=1) - math.log(len(self.classes_))  # p(y) = 1/K

    def score_samples(self, X, y=None, *, n_importance: int = SCORE_IMPORTANCE,
                      random_state: int = 0) -> np.ndarray:
        """log p(x), (n,): :meth:`log_likelihood_samples` with ``n_importance`` draws per
        class. ``y`` is ignored (a pipeline passes it): y is a latent variable here."""
        return self.log_likelihood_samples(X, n_importance=n_importance,
                                           random_state=random_state)

    def elbo(self, X, estimator: str = "b", n_samples: int = 1, random_state=0,
             y=None) -> np.ndarray:
        """Per-row bounds (nats), (n,): without y the bound on log p(x) with y latent,
        sum_y q(y|x) [L(x, y) + log p(y) - log q(y|x)] = U(x) - log K, each L(x, y) the
        conditional VAE's ``estimator`` bound; with y, the bound on log p(x|y)."""
        if y is not None:
            return super().elbo(X, estimator, n_samples, random_state, y=y)
        bounds = self._per_class(super().elbo, X, estimator=estimator, n_samples=n_samples,
                                 random_state=random_state)  # (n, K)
        log_q = self.predict_log_proba(X)
        q = np.exp(log_q)  # a class of q = 0 adds nothing (0 log 0 = 0)
        return (q * (bounds - np.where(q > 0, log_q, 0.0))).sum(1) - math.log(len(q[0]))

    def encode(self, X, n_samples: int | None = None, random_state=0, y=None):
        """Without y, the posterior of z with y latent, the mixture sum_y q(y|x)
        q(z|x, y): its mean (n, L); with ``n_samples=k``, k draws of it per row (each
        draw's class from q(y|x), seeded by ``random_state``) and its per-dimension
        standard deviation (n, L). With y, :meth:`VAE.encode` of q(z|x, y)."""
        if y is not None:
            return super().encode(X, n_samples, random_state, y=y)
        q = self.predict_proba(X)  # (n, K)
        means = self._per_class(super().encode, X, random_state=random_state)  # (n, K, L)
        mean = np.einsum("nk,nkl->nl", q, means)
        if n_samples is None:
            return mean
        parts = [super(SemiSupervisedVAE, self).encode(X, n_samples, random_state,
                                                       y=np.full(len(q), label))
                 for label in self.classes_.tolist()]
        draws = np.stack([draw for draw, _ in parts], 1)  # (n, K, k, L)
        variances = np.stack([std for _, std in parts], 1) ** 2  # (n, K, L)
        second = np.einsum("nk,nkl->nl", q, variances + means ** 2)
        std = np.sqrt(np.maximum(second - mean ** 2, 0.0)).astype(mean.dtype)
        rng = np.random.default_rng(check_seed(random_state))
        cumulative = np.cumsum(q, 1)[:, None, :]  # (n, 1, K)
        pick = (rng.random((len(q), draws.shape[2], 1)) > cumulative).sum(-1)  # (n, k)
        pick = np.minimum(pick, len(self.classes_) - 1)
        rows, draw = np.ogrid[:len(q), :draws.shape[2]]
        return draws[rows, pick, draw], std

    def reconstruct(self, X, y=None) -> np.ndarray:
        """Without y, the reconstructions of each class weighted by q(y|x), (n, d); with
        y, :meth:`VAE.reconstruct` for those classes."""
        if y is not None:
            return super().reconstruct(X, y=y)
        per_class = self._per_class(super().reconstruct, X)  # (n, K, d)
        return np.einsum("nk,nkd->nd", self.predict_proba(X), per_class).astype(
            per_class.dtype)

    def decode(self, Z, y=None) -> np.ndarray:
        """E[x|z] (n, d): without y the mean over the classes, p(y|z) = p(y) = 1/K;
        with y, the conditional decoder mean E[x|z, y]."""
        if y is not None:
            return super().decode(Z, y=y)
        return self._per_class(super().decode, Z).mean(1)

    def kl_to_prior(self, X, *, per_dimension: bool = False, n_samples: int = 256,
                    random_state=0, y=None) -> np.ndarray:
        """KL(q(z, y|x) || p(z, y)) per row (n,) without y: sum_y q(y|x) KL(q(z|x, y) ||
        p(z)) + KL(q(y|x) || p(y)); ``per_dimension=True``: the first term's, (n, L) (the
        class's KL belongs to no dimension of z). With y, :meth:`VAE.kl_to_prior`."""
        options = dict(per_dimension=per_dimension, n_samples=n_samples,
                       random_state=random_state)
        if y is not None:
            return super().kl_to_prior(X, y=y, **options)
        kl = self._per_class(super().kl_to_prior, X, **options)  # (n, K) or (n, K, L)
        log_q = self.predict_log_proba(X)
        q = np.exp(log_q)
        if per_dimension:
            return np.einsum("nk,nkl->nl", q, kl)
        class_kl = (q * np.where(q > 0, log_q, 0.0)).sum(1) + math.log(len(self.classes_))
        return (q * kl).sum(1) + class_kl

    def score(self, X, y=None) -> float:
        """Mean log p(x) (:meth:`score_samples`), nats; y is ignored."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None, sampler: str = "prior",
               y=None) -> np.ndarray:
        """Decoder means of n draws (n, d) for the classes ``y`` (one label for all, or
        one per sample); y=None draws each sample's class from p(y), uniform."""
        self._check_fitted()
        if y is None and isinstance(n_samples, (int, np.integer)) and n_samples > 0:
            y = np.random.default_rng(random_state if isinstance(random_state, int)
                                      else None).choice(self.classes_, int(n_samples))
        return super().sample(n_samples, random_state, sampler, y=y)

    # ------------------------------------------------------------------ saving

    def write_files(self, directory: str | os.PathLike, extra: dict | None = None, *,
                    named: str | os.PathLike | None = None):
        """The VAE's files (model.json of kind "semisupervised-vae", the classifier's
        settings in its ``extra.semisupervised``, and weights.safetensors) written into
        ``directory``: the writer of :meth:`save`'s commit
        (:func:`elbokit.models.save_model`)."""
        self._check_fitted()
        extra = {**(extra or {}), "semisupervised": self.semisupervised_.to_dict()}
        return super().write_files(directory, extra=extra, named=named)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None, networks=None) -> "SemiSupervisedVAE":
        """Load a model written by :meth:`save` (every field and tensor checked first);
        ``meta``: its model.json, when the caller has read it already. ``networks``
        (what :func:`elbokit.models.load_model` passes on) must be empty: M2's networks
        are built in."""
        if networks:
            raise ParameterError("a SemiSupervisedVAE has no custom networks; load it "
                                 "without networks")
        record = model_file.read(directory, kind=cls.kind, meta=meta)
        config = SemiSupervisedConfig.from_dict(record.extra.get("semisupervised"),
                                                f"{record.path}: extra.semisupervised")

        def build(architecture):
            return SemiSupervisedNetwork(architecture,
                                         classifier_hidden=config.classifier_hidden)

        record, architecture, training, tensors = saved.read_model(
            directory, kind=cls.kind, meta=record.meta, network=build)
        if not architecture.conditional or architecture.classes is None:
            raise ParameterError(f"{record.path}: a semi-supervised VAE is conditioned on "
                                 "class labels")
        model = build(architecture)
        saved.check_state_dict(model, tensors, record.weights)
        model.load_state_dict(tensors)
        settings = {k: v for k, v in config_kwargs(ArchitectureConfig, architecture).items()
                    if k in _PARAMETERS}
        settings.update(config_kwargs(TrainingConfig, training), device=device,
                        **config_kwargs(SemiSupervisedConfig, config))
        estimator = cls(**settings)
        estimator.model_ = model.eval()
        estimator.architecture_, estimator.training_ = architecture, training
        estimator.semisupervised_, estimator.history_ = config, record.history
        estimator._set_fitted_names(architecture, record.fitted, record.path)
        estimator.n_condition_ = architecture.condition_dim
        estimator.classes_ = np.asarray(architecture.classes)
        return estimator


def _signature() -> inspect.Signature:
    """The VAE's signature less ``conditional``, with SemiSupervisedConfig's fields after
    ``latent_dim``: what scikit-learn's get_params and clone read."""
    params = [p for name, p in inspect.signature(VAE.__init__).parameters.items()
              if name != "conditional"]
    own = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                             default=estimator_default(f))
           for f in dataclasses.fields(SemiSupervisedConfig)]
    return inspect.Signature(params[:2] + own + params[2:])


SemiSupervisedVAE.__init__.__signature__ = _signature()
_PARAMETERS = {name: p for name, p in SemiSupervisedVAE.__init__.__signature__
               .parameters.items() if name != "self"}
_DEFAULTS = {name: p.default for name, p in _PARAMETERS.items()}

__all__ = ["SemiSupervisedVAE", "SemiSupervisedNetwork", "SemiSupervisedObjective"]
