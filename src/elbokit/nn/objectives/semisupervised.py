"""M2's training objective (Kingma et al. 2014; the estimator is
:class:`elbokit.nn.semisupervised.SemiSupervisedVAE`, whose module docstring derives
it): -J / N by minibatches that each carry labeled rows, and the epoch's row order
that makes them (:meth:`SemiSupervisedObjective.batch_order`, the loop's
``batch_order`` hook)."""

from __future__ import annotations

import math

import torch

from .elbo import EVAL_BATCH
from .step import TrainingObjective


class SemiSupervisedObjective(TrainingObjective):
    """-J / N of the module docstring, by minibatch: ``estimator`` gives L(x, y) (an
    ELBOEstimator, L_B by default); ``alpha`` the weight a / N; ``n_labeled`` of the
    ``n_rows`` training rows are labeled, in ``n_classes`` classes (coded in the last
    columns of a row).

    Each training minibatch carries labeled rows (:meth:`batch_order`: at least
    ``LABELED_SHARE`` of it, or the labeled rows' share of the data where that is
    larger), and its loss weights each kind of row by its share of the data, so that it
    stays an unbiased estimate of -J / N (:meth:`loss`)."""

    name = "semisupervised"
    fits = "semi-supervised VAE"

    def __init__(self, estimator, alpha: float, n_labeled: int, n_rows: int,
                 n_classes: int):
        self.estimator, self.alpha, self.n_classes = estimator, float(alpha), int(n_classes)
        self.n_labeled, self.n_rows = int(n_labeled), int(n_rows)
        # a labeled row's weight of log q(y|x) in J / N, per row: a / N_l = alpha N / N_l
        self.label_weight = self.alpha * self.n_rows / self.n_labeled

    def terms(self, model, x: torch.Tensor, n_samples: int, generator):
        """(mask of the labeled rows (B,), their L(x, y) and log q(y|x) (B_l,) each, the
        unlabeled rows' U(x) (B_u,)): a labeled row's code is one-hot, an unlabeled
        row's all zeros."""
        data, code = model.split_condition(x)  # (B, d), (B, K)
        labeled = code.sum(-1) > 0
        log_q = model.classify(data)  # (B, K)
        bound_l = log_q_y = bound_u = x.new_zeros(0)
        if bool(labeled.any()):
            bound_l = self.estimator(model, x[labeled], n_samples, generator)
            log_q_y = (log_q[labeled] * code[labeled]).sum(-1)
        if not bool(labeled.all()):
            rows, k = data[~labeled], code.shape[1]
            # every row with every class: class j's copies are rows j*B_u .. (j+1)*B_u - 1
            # (the encoder computes the rows' part once: encode_posterior_each)
            eye = torch.eye(k, dtype=x.dtype, device=x.device)
            joined = torch.cat([rows.repeat(k, 1), eye.repeat_interleave(len(rows), 0)], -1)
            bound = self.estimator(model, joined, n_samples, generator,
                                   encoding=model.encode_posterior_each(rows, eye))
            bound = bound.view(k, len(rows)).T  # (B_u, K)
            log_q_u = log_q[~labeled]
            bound_u = (log_q_u.exp() * (bound - log_q_u)).sum(-1)
        return labeled, bound_l, log_q_y, bound_u

    def per_row(self, model, x: torch.Tensor, n_samples: int, generator) -> torch.Tensor:
        """Each row's term of J, (B,): L(x, y) + label_weight log q(y|x) for a labeled
        row, U(x) for an unlabeled one; their mean over all N rows is J / N."""
        return self._per_row(*self.terms(model, x, n_samples, generator))

    def _per_row(self, labeled, bound_l, log_q_y, bound_u) -> torch.Tensor:
        out = bound_u.new_zeros(labeled.shape[0])
        out[labeled] = bound_l + self.label_weight * log_q_y
        out[~labeled] = bound_u
        return out

    def loss(self, model, x, config, generator, step: int, steps_per_epoch: int):
        """-J / N estimated from a minibatch holding both kinds of rows, each kind's mean
        weighted by its share of the data: (N_l / N) mean L + alpha mean log q(y|x) +
        (N_u / N) mean U, unbiased when each kind's rows are drawn uniformly
        (:meth:`batch_order`). A minibatch missing one kind (a process's share under
        torchrun) takes the plain mean of :meth:`per_row`."""
        terms = self.terms(model, x, config.n_samples, generator)
        _, bound_l, log_q_y, bound_u = terms
        n_unlabeled = self.n_rows - self.n_labeled
        if len(bound_l) and (len(bound_u) or not n_unlabeled):
            objective = (self.n_labeled / self.n_rows * bound_l.mean()
                         + self.alpha * log_q_y.mean())
            if len(bound_u):
                objective = objective + n_unlabeled / self.n_rows * bound_u.mean()
        else:
            objective = self._per_row(*terms).mean()
        return -objective, -objective

    def batch_order(self, X: torch.Tensor, batch_size: int, generator) -> torch.Tensor:
        """The epoch's row order (n,) for the training loop (sliced into minibatches of
        ``batch_size``, the last one smaller): every minibatch holds
        :func:`labeled_per_batch` labeled rows (in proportion, the last), spread evenly
        through it, drawn uniformly from the labeled rows by cycling seeded permutations,
        and the rest drawn the same way from the unlabeled rows."""
        labeled = X[:, -self.n_classes:].sum(-1) > 0  # (n,), on X's device
        where = [torch.nonzero(mask).squeeze(1).to(generator.device)
                 for mask in (labeled, ~labeled)]
        n, device = X.shape[0], generator.device
        if not len(where[1]) or batch_size < 2:  # no room for both kinds: a permutation
            return torch.randperm(n, generator=generator, device=device)
        per_batch = labeled_per_batch(batch_size, len(where[0]), n)
        sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
        slot = torch.cat([_spread(max(1, round(per_batch * size / batch_size)), size)
                          for size in sizes]).to(device)  # (n,) True: a labeled row's place
        order = torch.empty(n, dtype=torch.long, device=device)
        for rows, places in zip(where, (slot, ~slot)):
            order[places] = rows[_cycled(len(rows), int(places.sum()), generator)]
        return order

    @torch.no_grad()
    def validate(self, model, X: torch.Tensor, seed: int) -> float:
        generator = torch.Generator(device=next(model.parameters()).device)
        generator.manual_seed(seed)
        device = generator.device
        total = sum(float(self.per_row(model, X[i:i + EVAL_BATCH].to(device), 1,
                                       generator).sum())
                    for i in range(0, X.shape[0], EVAL_BATCH))
        return total / X.shape[0]


LABELED_SHARE = 0.1  # the least share of each training minibatch that is labeled rows


def labeled_per_batch(batch_size: int, n_labeled: int, n_rows: int) -> int:
    """The labeled rows of each full training minibatch: ``LABELED_SHARE`` of it, or the
    labeled rows' share of the data where that is larger, at least 1, and at least one
    place left for an unlabeled row."""
    share = max(LABELED_SHARE, n_labeled / n_rows)
    return max(1, min(batch_size - 1, math.ceil(share * batch_size)))


def _spread(k: int, size: int) -> torch.Tensor:
    """(size,) bool, True at k places spread evenly (so torchrun's contiguous shares of
    a minibatch each get their part of the labeled rows); k is capped at size."""
    places = torch.zeros(size, dtype=torch.bool)
    places[(torch.arange(min(k, size)) * size) // max(min(k, size), 1)] = True
    return places


def _cycled(n: int, count: int, generator) -> torch.Tensor:
    """``count`` indices of range(n): seeded permutations of it one after another, so
    each place is a uniform draw and no index repeats before all n came."""
    device = generator.device
    rounds = [torch.randperm(n, generator=generator, device=device)
              for _ in range(math.ceil(count / n))]
    return torch.cat(rounds)[:count]
