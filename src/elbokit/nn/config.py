"""Configuration of a VAE: the architecture (what the weights mean) and the training
run (how they were fitted), as two dataclasses, saved next to the weights.

These two dataclasses are the one declaration of every VAE setting: each field
carries its type, default, range or choices and help text (``field(metadata=...)``,
made by ``setting`` of ``elbokit.nn._settings``). The estimator's signature
(:class:`elbokit.nn.VAE`), its parameter checks, ``VAE.load`` and the options of
``elbokit fit vae`` and ``elbokit fit ae`` are all derived from them (:func:`estimator_settings`, :func:`cli_settings`).

Both round-trip through JSON with ``to_dict`` / ``from_dict``;
``from_dict`` checks every field's type and range, so a tampered ``model.json``
fails with a :class:`~elbokit.exceptions.ModelFileError` that names the field.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from .._validation import check_positive
from ..exceptions import ParameterError
from ..persistence.files import MAX_SEED
from ._settings import (RESUME_RULES, UNSET, Settings, check_fields,  # noqa: F401
                        estimator_default, json_value, setting)  # (re-exported)

LR_SCHEDULES = ("constant", "cosine")
STOP_BELOW_LR = 0.1  # early stopping under a decaying schedule: lr at most this x peak

# K of a mixture prior when prior_components is not given: the VampPrior's 50 pseudo-inputs
# (pythae's default too) were better than 10 at equal training time in the 120-minute
# Fashion-MNIST pair (docs/decisions/vampprior-k50.md); the mixture of Gaussians keeps 10
PRIOR_COMPONENTS = {"vamp": 50, "mog": 10}

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-fixed", "logistic", "poisson", "nb", "zinb")
COUNT_LIKELIHOODS = ("poisson", "nb", "zinb")  # of raw counts (likelihoods.CountLikelihood)
# epochs="auto": enough epochs for at least MIN_STEPS optimizer steps, never fewer than
# MIN_EPOCHS (a large data set) nor more than MAX_EPOCHS (a tiny one); see auto_epochs
MIN_EPOCHS, MAX_EPOCHS, MIN_STEPS = 10, 100, 1000
# epochs="auto" with a max_minutes budget: the budget (or early stopping) ends the fit, so
# "auto" is this many, a cap no budget of these machines reaches
BUDGET_EPOCHS = 100_000
# SemiSupervisedVAE's alpha="auto": ALPHA_PER_FEATURE per feature of the data; see auto_alpha
ALPHA_PER_FEATURE = 3 / 64
# validation_fraction="auto" / patience="auto" on small data: see auto_validation
SMALL_DATA_ROWS, VALIDATION_FRACTION, AUTO_PATIENCE = 12_800, 0.1, 10
AUTO_PATIENCE_STEPS = 200  # "auto" patience: at least this many optimizer steps
# a fit on rows with missing values (NaN): the Gaussian variance floor min_variance=None is
# MISSING_MIN_VARIANCE of each feature's variance (standardized; else MIN_VARIANCE), and
# epochs="auto" is MISSING_EPOCHS where early stopping is on (patience decides). On digits'
# held-out masks (seeds 100, 101; benchmarks/impute.py) the floor 1e-3 let the model explain
# pixels as noise and the 77 epochs of auto_epochs stopped short: RMSE 0.721 / 0.833 sd at
# 20% / 50% removed, 0.662 / 0.758 with both (KNNImputer 0.656 / 0.821)
MIN_VARIANCE, MISSING_MIN_VARIANCE, MISSING_EPOCHS = 1e-3, 0.2, 300
NETWORKS = ("mlp", "linear", "conv", "custom")  # "custom": a module given by the caller
ARCHS = ("mlp", "conv")
OBJECTIVES = ("a", "b", "iwae", "miwae", "ciwae", "piwae",
              "custom")  # "custom": an ELBOEstimator object was given
# gradient estimators (objectives.py): "stl" for L_A, "dreg" for the importance-weighted bounds
GRADIENTS = ("standard", "stl", "dreg")
GRADIENT_OBJECTIVES = {"standard": OBJECTIVES, "stl": ("a",),
                       "dreg": ("iwae", "miwae", "ciwae", "piwae")}
MIWAE_M, CIWAE_BETA = 8, 0.5  # Rainforth et al. (2018)'s MIWAE(8, 8) and CIWAE(0.5)
BINARIZE = ("none", "dynamic", "static")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("float32", "bfloat16")  # the training matmuls' operand type (train.py)
POSTERIORS = ("gaussian", "iaf")
SCHEDULES = ("joint", "alternating")  # elbokit.nn.schedules
ACTIVATIONS = ("relu", "gated")
LOGVAR_CLAMP = (-6.0, 2.0)  # the range of clamp_logvar (the VampPrior code's hardtanh)
PRIORS = ("standard", "mog", "vamp", "custom")  # "custom": a Prior object was given
LATENT_DIM = 10  # the one default of the latent size, library and CLI alike

@dataclass(frozen=True)
class ArchitectureConfig(Settings):
    """What the network is: enough to rebuild the module and load its weights.

    ``decoder="linear"`` makes the model factor analysis with an amortised posterior
    (x = W z + b + noise); its Gaussian variance is then a free per-pixel parameter,
    exactly FA's ``psi``. ``min_variance`` is the floor of the learned Gaussian
    variance, ``var = min_variance + softplus(s(z))``: without it the likelihood of a
    constant pixel runs to infinity. ``sigma`` is the standard deviation of
    ``likelihood="gaussian-fixed"``.

    ``posterior="iaf"`` puts an inverse autoregressive flow on the Gaussian encoder's
    sample (see :mod:`elbokit.nn.flows`): ``flow_steps`` steps, each a MADE network
    with hidden layers ``flow_hidden`` and a context vector of ``flow_context`` numbers
    from the encoder (extra outputs of its last layer).

    ``activation="gated"`` makes each hidden layer of the MLPs a gated dense layer,
    h = (W x + b) * sigmoid(V x + c) (the VampPrior and Exemplar-VAE code's);
    ``clamp_logvar`` clamps the encoder's log-variance to [-6, 2] as that code does.
    ``prior`` is p(z) (see :mod:`elbokit.nn.priors`): ``"standard"`` N(0, I),
    ``"mog"`` a learned mixture of ``prior_components`` diagonal Gaussians, ``"vamp"``
    the VampPrior with ``prior_components`` pseudo-inputs, ``"custom"`` a
    :class:`~elbokit.nn.priors.Prior` object of the caller's. ``gmm_components``: the
    Gaussian mixture fitted to the posterior means of the training rows after the fit,
    drawn by ``VAE.sample(sampler="gmm")`` (its weights, means and Cholesky factors
    are saved with the model's weights; 0: none).
    ``encoder="custom"`` / ``decoder="custom"``: a module given by the caller (see
    :mod:`elbokit.nn.protocols`); ``encoder_module`` / ``decoder_module`` then record
    ``{"class": name, "module": name, "args": constructor arguments or None}`` (JSON
    values), from which ``VAE.load`` rebuilds it with the class the caller passes.
    ``channels``: the image's colour channels; a row is the C*H*W values of one image,
    channel first.

    ``standardize=True`` puts a fixed per-feature affine map around the networks: the
    encoder sees (x - m) / s, the decoder's likelihood is of that standardized x, and
    every density is turned back into one of x as given by the Jacobian,
    -sum_j log s_j (m and s are buffers, saved with the weights). ``min_variance`` and
    ``sigma`` are then in standardized units. ``feature_names``: the column names
    of the training data (a DataFrame's), or None.

    ``conditional=True`` is the conditional VAE, q(z|x, y) and p(x|z, y): the
    ``condition_dim`` numbers of y (the one-hot code of ``classes``, or covariates when
    ``classes`` is None) are concatenated to the encoder's input (for conv: to the
    features entering its linear head) and to the decoder's z.
    """

    section = "architecture"  # names the JSON object in from_dict's messages

    n_features: int = setting(UNSET, "d, the number of features (from the data).", minimum=1,
                              cli=False)
    latent_dim: int = setting(LATENT_DIM, "Latent dimension L.", minimum=1, flag="--latent",
                              positional=True)
    top_latent_dim: int = setting(0, "L2 > 0: a hierarchical VAE with two stochastic layers "
                                  "(the VampPrior paper's HVAE), z2 of L2 dimensions under the "
                                  "prior and z1 of L - L2 given z2 (--latent counts both); 0: "
                                  "one layer.", minimum=0, flag="--top-latent")
    likelihood: str = setting("bernoulli", "auto (the default: logistic for 8-bit data, "
                              "values k/255, nb for tables of counts, bernoulli for other "
                              "values in [0, 1], else gaussian), "
                              "bernoulli (data in [0, 1]), logistic (discretized logistic of "
                              "8-bit values: a density in bits/dim), gaussian (learned "
                              "per-feature variance), gaussian-fixed (std --sigma), or for "
                              "raw counts poisson, nb (negative binomial, a dispersion per "
                              "feature) or zinb (zero-inflated nb): rates are shares of each "
                              "row's total count.",
                              choices=LIKELIHOODS,
                              estimator_default="auto")
    arch: str = setting("mlp", "mlp or conv: the family of the non-linear networks (conv: "
                        "images 8x8, 28x28, ...).", choices=ARCHS)
    encoder: str = setting("mlp", "mlp, linear or conv (default: linear for --decoder "
                           "linear, else --arch).", choices=NETWORKS, estimator_default=None)
    decoder: str = setting("mlp", "mlp, linear (x = W z + b + noise: factor analysis) or conv "
                           "(default: --arch).", choices=NETWORKS, estimator_default=None)
    hidden: tuple[int, ...] = setting((400,), "Hidden sizes of the MLP encoder (the decoder "
                                      "mirrors them), e.g. 400 or 512,256.", minimum=1)
    activation: str = setting("relu", "Hidden layers of the MLPs: relu, or gated "
                              "(h = (W x) * sigmoid(V x), the VampPrior/Exemplar code's).",
                              choices=ACTIVATIONS)
    clamp_logvar: bool = setting(False, "Clamp the encoder's log-variance to [-6, 2] "
                                 "(hardtanh, as the VampPrior code does).")
    image_shape: tuple[int, int] | None = setting(None, "(height, width) of image data, for "
                                                  "conv networks.", minimum=1, cli=False)
    channels: int = setting(1, "Colour channels C of image data (1 grey, 3 RGB); rows hold "
                            "C*H*W values, channel first.", minimum=1, cli=False)
    min_variance: float = setting(MIN_VARIANCE, "Variance floor of likelihood gaussian (in "
                                  "units of each feature's variance when standardized; "
                                  f"default: {MISSING_MIN_VARIANCE} for a standardized fit on "
                                  f"rows with NaN, else {MIN_VARIANCE}).", positive=True,
                                  estimator_default=None)
    sigma: float = setting(1.0, "Std of likelihood gaussian-fixed.", positive=True)
    posterior: str = setting("gaussian", "gaussian, or iaf (inverse autoregressive flow on the "
                             "Gaussian encoder).", choices=POSTERIORS)
    flow_steps: int = setting(2, "IAF steps.", minimum=1)
    flow_hidden: tuple[int, ...] = setting((320,), "Hidden sizes of each IAF step's MADE.",
                                           minimum=1)
    flow_context: int = setting(64, "Numbers of context the encoder passes to the IAF.",
                                minimum=0)
    prior: str = setting("standard", "The prior p(z): standard (N(0, I)), mog (a learned "
                         "mixture of --prior-components diagonal Gaussians) or vamp (VampPrior: "
                         "the encoder's posterior at that many learned pseudo-inputs).",
                         choices=PRIORS)
    prior_components: int = setting(10, "K, the components of prior mog or vamp (default: "
                                    f"{PRIOR_COMPONENTS['vamp']} pseudo-inputs for vamp, "
                                    f"{PRIOR_COMPONENTS['mog']} Gaussians for mog).",
                                    minimum=1, estimator_default=None)
    gmm_components: int = setting(0, "Components of the Gaussian mixture fitted to the "
                                  "training codes after the fit, for sample(sampler='gmm') "
                                  "(0, the default: none; fitting 10 costs seconds per fit).",
                                  minimum=0)
    standardize: bool = setting(
        False, "Fit on (x - mean) / std per feature, densities still of x as given (default: "
        "on for --likelihood gaussian, off otherwise; refused for bernoulli, logistic and the "
        "count likelihoods).",
        estimator_default="auto")
    conditional: bool = setting(False, "q(z|x, y) and p(x|z, y): fit(X, y) with class labels "
                                "(one-hot) or a covariate matrix (the CLI's --condition-on).",
                                cli=False)
    feature_names: tuple[str, ...] | None = setting(None, "Column names of the training data.",
                                                    cli=False)
    condition_dim: int = setting(0, "c, the width of the conditioning input y (from the data).",
                                 minimum=0, cli=False)
    missing: bool = setting(False, "Whether the model was fitted on rows with missing values "
                            "(NaN): its encoder then sees the observed entries zero-filled "
                            "(in standardized units) and their 0/1 mask (from the data).",
                            cli=False)
    classes: tuple[int | str, ...] | None = setting(
        None, "The class labels of y, in one-hot order (None: y is a covariate matrix).",
        cli=False)
    encoder_module: dict | None = setting(None, "A custom encoder: its class and module "
                                          "names and constructor arguments (JSON, or None "
                                          "when it gave none).", cli=False)
    decoder_module: dict | None = setting(None, "A custom decoder: its class and module "
                                          "names and constructor arguments (JSON, or None "
                                          "when it gave none).", cli=False)

    def __post_init__(self):
        check_fields(self)
        if self.standardize and self.likelihood in ("bernoulli", "logistic",
                                                    *COUNT_LIKELIHOODS):
            data = "raw counts" if self.likelihood in COUNT_LIKELIHOODS else "values in [0, 1]"
            raise ParameterError(f"standardize=True does not apply to likelihood="
                                 f"'{self.likelihood}' (its data are {data}); use "
                                 "standardize=False or a Gaussian likelihood")
        if self.feature_names is not None and (
                len(self.feature_names) != self.n_features
                or not all(isinstance(n, str) for n in self.feature_names)):
            raise ParameterError(f"feature_names must be {self.n_features} strings")
        if not self.flow_hidden:
            raise ParameterError(f"flow_hidden needs at least one hidden layer size; got "
                                 f"{self.flow_hidden!r}")
        self._check_condition()
        if self.top_latent_dim:
            self._check_hierarchy()
        if "conv" in (self.encoder, self.decoder):
            self._check_conv_shape()
        for part in ("encoder", "decoder"):
            _check_module_record(part, getattr(self, part), getattr(self, f"{part}_module"))

    def _check_condition(self):
        if not self.conditional:
            if self.condition_dim or self.classes is not None:
                raise ParameterError("condition_dim and classes belong to a conditional model "
                                     "(conditional=True)")
            return
        if self.condition_dim < 1:
            raise ParameterError("conditional=True needs y, the labels or covariates to "
                                 "condition on: fit(X, y)")
        if self.prior == "vamp":
            raise ParameterError("prior='vamp' is not available for a conditional VAE (its "
                                 "pseudo-inputs would need a y of their own); use prior="
                                 "'standard' or 'mog'")
        if self.classes is not None:
            if len(self.classes) != self.condition_dim or len(set(self.classes)) != \
                    len(self.classes):
                raise ParameterError(f"classes must be {self.condition_dim} distinct labels; "
                                     f"got {list(self.classes)[:20]}")

    def _check_hierarchy(self):
        """The two-layer VAE (elbokit.nn.hierarchical): its own encoders and prior."""
        if not 0 < self.top_latent_dim < self.latent_dim:
            raise ParameterError(f"top_latent_dim must be below latent_dim (which counts z1 "
                                 f"and z2); got {self.top_latent_dim} of {self.latent_dim}")
        for name, bad in (("posterior", "iaf"), ("encoder", "custom"), ("prior", "custom")):
            if getattr(self, name) == bad:
                raise ParameterError(f"{name}={bad!r} is not available for the hierarchical "
                                     f"VAE (top_latent_dim > 0): it builds its own q(z2|x), "
                                     "q(z1|x, z2) and p(z2) p(z1|z2)")

    def _check_conv_shape(self):
        shape = self.image_shape
        if shape is None:
            raise ParameterError("a conv encoder/decoder needs image_shape=(height, width); "
                                 "pass it, or use the data set's image_shape")
        if len(shape) != 2 or self.channels * shape[0] * shape[1] != self.n_features:
            channels = f" x {self.channels} channels" if self.channels != 1 else ""
            raise ParameterError(f"image_shape {shape}{channels} does not match n_features "
                                 f"{self.n_features}")
        if shape[0] % 4 or shape[1] % 4:
            raise ParameterError(f"the conv networks halve the image twice, so height and "
                                 f"width must be multiples of 4; got {tuple(shape)}")


@dataclass(frozen=True)
class TrainingConfig(Settings):
    """How the weights are fitted: the estimator of the ELBO, the optimiser, the data
    protocol. ``lr_schedule="cosine"`` anneals the learning rate to 0 over the run
    (per step), which removes the noise floor of the stochastic gradient (a resumed
    run matches an uninterrupted one only with the same ``epochs``). ``objective`` is
    ``"a"`` (L_A), ``"b"`` (L_B), ``"iwae"`` or a multi-sample bound below;
    ``n_samples`` is L, the number of z drawn per data point (K for the multi-sample
    bounds). ``binarize="dynamic"``
    redraws binary pixels from the [0, 1] intensities every epoch (Bernoulli only).
    ``patience`` > 0 turns on early stopping on the validation ELBO (the fitted model
    keeps the best validation epoch's weights); under the cosine schedule a run stops
    this way only once its learning rate is below ``STOP_BELOW_LR`` (0.1) of the peak
    (a plateau at a high step size is the gradient's noise floor, which the annealing
    lowers).

    The published recipe (VampPrior / Exemplar-VAE code) as options: ``lr_warmup``
    (epochs of linear learning-rate warm-up), ``max_minutes`` (a budget of the fit's
    wall-clock, its validation and checkpoint writes included: training stops after the
    last epoch that still fits, and ``lr_schedule="cosine"``
    anneals over whichever of epochs and time runs out first), ``ema`` (Polyak
    averaging of the weights, w_avg <- d w_avg + (1 - d) w after each step with
    d = min(ema, (1 + t) / (10 + t)) at step t; the averaged weights are what the
    validation ELBO, early stopping and the fitted model use; the raw weights
    continue training).

    ``precision``: the operand type of the training matmuls, ``"float32"`` or
    ``"bfloat16"`` (mixed precision: the weights, gradients, Adam's state, the
    densities, the loss and every evaluation stay float32); the estimator's default
    ``"auto"`` is resolved at fit by :func:`elbokit.nn.train.resolve_precision` and the
    resolved value is what is stored.

    The KL term of the training loss (objectives "a" and "b" only) can be weighted:
    ``beta`` multiplies it; ``kl_warmup=N`` raises its weight linearly from 0 to
    ``beta`` over the first N epochs (per step); ``free_bits=lambda`` (nats per latent
    dimension, Kingma et al. 2016) replaces each dimension's batch-mean KL by
    max(lambda, KL_j). These change the gradients only: the ELBO recorded in the
    history is always the true, unweighted bound.

    The multi-sample bounds of Rainforth et al. (2018) (see :mod:`elbokit.nn.objectives`):
    ``"miwae"``, the mean of ``miwae_m`` = M independent K-sample IWAE bounds
    (K = ``n_samples``, M * K draws per point); ``"ciwae"``, ``ciwae_beta`` * L_A +
    (1 - ``ciwae_beta``) * IWAE on the same K draws; ``"piwae"``, the decoder trained on
    the IWAE bound of all M * K draws, the encoder on MIWAE(M, K). ``gradient``:
    ``"standard"`` (autograd of the estimate), ``"stl"`` (sticking the landing, Roeder et
    al. 2017; objective "a") or ``"dreg"`` (doubly reparameterized, Tucker et al. 2019;
    the importance-weighted objectives); both change the encoder's gradient only.
    ``schedule="alternating"`` trains EM-style: ``e_steps`` minibatch steps of the
    encoder alone, then ``m_steps`` of the decoder alone, repeated (see
    :mod:`elbokit.nn.schedules`); ``"joint"`` steps both every time."""

    section = "training"

    epochs: int = setting(MIN_EPOCHS, f"Epochs (in total, when resuming); default: enough "
                          f"for {MIN_STEPS} steps of --batch-size rows, at least {MIN_EPOCHS} "
                          f"and at most {MAX_EPOCHS}; with --max-minutes, as many as the "
                          "budget holds.", minimum=1, resume="free",
                          estimator_default="auto")
    batch_size: int = setting(128, "Rows per minibatch.", minimum=1)
    lr: float = setting(1e-3, "Adam learning rate.", positive=True)
    lr_schedule: str = setting("constant", "constant or cosine.", choices=LR_SCHEDULES)
    lr_warmup: int = setting(0, "Epochs over which the learning rate rises linearly from 0 "
                             "(per step) before the schedule.", minimum=0)
    max_minutes: float = setting(0.0, "Stop after the last epoch that fits in this many "
                                 "minutes of the fit's wall-clock, validation and checkpoints "
                                 "included (0: no limit); a cosine schedule then anneals over "
                                 "the time.")
    ema: float = setting(0.0, "Polyak averaging: decay of the exponential moving average of "
                         "the weights (e.g. 0.999; 0: off). The average is what is validated, "
                         "kept and saved.")
    objective: str = setting("b", "a (L_A), b (L_B), iwae, miwae, ciwae or piwae.",
                             choices=OBJECTIVES)
    n_samples: int = setting(1, "z samples per point (L).", minimum=1)
    fused_step: bool = setting(True, "L_B's step for the preset MLP VAE (Bernoulli; standard, "
                               "vamp or mog prior) with its backward written out: autograd's "
                               "gradients, 1.1-1.4x faster on the CPU (elbokit.nn.objectives.fused); "
                               "off: autograd.", resume="warn")
    precision: str = setting("float32", "Training's matmuls: auto (the default: bfloat16 for "
                             "likelihood bernoulli on a device with native bfloat16 matmuls, "
                             "float32 otherwise), float32, or bfloat16 (mixed precision: "
                             "bfloat16 operands; float32 sums, weights, gradients, optimiser, "
                             "densities, losses and every evaluation).",
                             choices=PRECISIONS, estimator_default="auto", resume="warn")
    binarize: str = setting("none", "none, dynamic or static (bernoulli only).",
                            choices=BINARIZE)
    patience: int = setting(0, "Early stopping on the validation ELBO after this many epochs "
                            f"without gain (0: off; default on a fit of at most "
                            f"{SMALL_DATA_ROWS} rows with validation rows: {AUTO_PATIENCE} "
                            f"epochs or {AUTO_PATIENCE_STEPS} steps, the longer; else off); under "
                            f"a cosine schedule only once the lr is below {STOP_BELOW_LR} of its "
                            "peak.",
                            minimum=0, resume="free", estimator_default="auto")
    validation_fraction: float = setting(
        0.0, "Share of the training rows held out (seeded) for the validation ELBO and early "
        f"stopping (0: none; default: {VALIDATION_FRACTION} on a fit of at most "
        f"{SMALL_DATA_ROWS} rows, small enough to overfit, else 0).",
        estimator_default="auto")
    # the CLI's --seed also seeds the data split
    seed: int = setting(0, "Seed of the weights' initialisation and the minibatch order.",
                        minimum=0, maximum=MAX_SEED, cli=False)
    device: str = setting("auto", "auto (cuda, else mps, else cpu), cpu, cuda or mps.",
                          choices=DEVICES, resume="free")
    progress: bool = setting(True, "Show a progress bar.", resume="free")
    kl_warmup: int = setting(0, "Epochs over which the KL weight rises from 0 (a, b).",
                             minimum=0)
    free_bits: float = setting(0.0, "Free bits: nats per latent dimension (a, b).")
    beta: float = setting(1.0, "Weight of the KL in the loss (a, b); the reported ELBO is "
                          "unweighted.", positive=True)
    gradient: str = setting("standard", "Gradient estimator: standard, stl (sticking the "
                            "landing; objective a) or dreg (doubly reparameterized; iwae, miwae, "
                            "ciwae, piwae).", choices=GRADIENTS)
    miwae_m: int = setting(MIWAE_M, "M, the independent K-sample IWAE bounds per point of "
                           "miwae and piwae (K = --n-samples).", minimum=1)
    ciwae_beta: float = setting(CIWAE_BETA, "Weight of L_A in ciwae: beta * L_A + (1 - beta) "
                                "* IWAE, beta in [0, 1].")
    schedule: str = setting("joint", "joint (every step updates encoder and decoder) or "
                            "alternating (EM-style: e-steps encoder steps, then m-steps "
                            "decoder steps).", choices=SCHEDULES)
    e_steps: int = setting(1, "Encoder-only steps per E phase (schedule alternating).",
                           minimum=1)
    m_steps: int = setting(1, "Decoder-only steps per M phase (schedule alternating).",
                           minimum=1)

    def __post_init__(self):
        check_fields(self)
        if isinstance(self.validation_fraction, bool) or not isinstance(
                self.validation_fraction, numbers.Real) or not 0 <= self.validation_fraction < 1:
            raise ParameterError(f"validation_fraction must be a number in [0, 1) (0: none); "
                                 f"got {self.validation_fraction!r}")
        for name in ("free_bits", "max_minutes"):  # 0 (off) or a positive number
            if getattr(self, name) != 0:
                check_positive(getattr(self, name), name)
        if isinstance(self.ema, bool) or not isinstance(self.ema, numbers.Real) or \
                not 0 <= self.ema < 1:
            raise ParameterError(f"ema must be a number in [0, 1) (0: off); got {self.ema!r}")
        if self.kl_weighted and self.objective not in ("a", "b"):
            raise ParameterError(f"kl_warmup, free_bits and beta weight the KL term of "
                                 f"objectives 'a' and 'b'; objective {self.objective!r} has "
                                 "no separate KL term")
        self._check_multisample()

    def _check_multisample(self):
        """The settings of the multi-sample bounds and gradient estimators apply only
        to the objectives that use them."""
        if isinstance(self.ciwae_beta, bool) or not isinstance(self.ciwae_beta, numbers.Real) \
                or not 0 <= self.ciwae_beta <= 1:
            raise ParameterError(f"ciwae_beta must be a number in [0, 1]; got "
                                 f"{self.ciwae_beta!r}")
        custom = self.objective == "custom"  # an object: its own settings apply
        if self.miwae_m != MIWAE_M and self.objective not in ("miwae", "piwae") and not custom:
            raise ParameterError(f"miwae_m applies to objectives 'miwae' and 'piwae'; got "
                                 f"objective {self.objective!r}")
        if self.ciwae_beta != CIWAE_BETA and self.objective != "ciwae" and not custom:
            raise ParameterError(f"ciwae_beta applies to objective 'ciwae'; got objective "
                                 f"{self.objective!r}")
        if self.objective not in GRADIENT_OBJECTIVES[self.gradient] and not custom:
            raise ParameterError(
                f"gradient={self.gradient!r} does not apply to objective {self.objective!r}: "
                "'stl' is for objective 'a' (L_A) and 'dreg' for 'iwae', 'miwae', 'ciwae' and "
                "'piwae'; L_B ('b') takes the KL in closed form, with no score term to remove")
        if self.gradient != "standard" and self.kl_weighted:
            raise ParameterError(f"gradient={self.gradient!r} does not combine with kl_warmup, "
                                 "free_bits or beta (the KL-weighted loss is L_B's form)")

    @property
    def kl_weighted(self) -> bool:
        """Whether the training loss differs from the plain -ELBO."""
        return bool(self.kl_warmup or self.free_bits or self.beta != 1)


# --------------------------------------------------------------------------- the settings

@dataclass(frozen=True)
class SemiSupervisedConfig(Settings):
    """The settings of :class:`~elbokit.nn.SemiSupervisedVAE` beyond the VAE's (Kingma
    et al. 2014, model M2): the classifier q(y|x) and the weight of its term."""

    section = "semisupervised"

    classifier_hidden: tuple[int, ...] = setting(
        (500,), "Hidden sizes of the MLP classifier q(y|x) (the paper's 500).", minimum=1,
        cli=False)
    alpha: float = setting(
        ALPHA_PER_FEATURE * 64, "Weight of the labeled rows' log q(y|x) per row of the data, "
        "a = alpha N (N the training rows; the paper's a = 0.1 N is 0.1); the estimator's "
        "default 'auto' is auto_alpha(d) = ALPHA_PER_FEATURE x d for d features (3 for "
        "digits' 64 pixels).", positive=True, cli=False, estimator_default="auto")

    def __post_init__(self):
        check_fields(self)


# fields the data (or the caller's modules) decide, not a setting: not arguments of the
# estimator
DATA_FIELDS = ("n_features", "feature_names", "condition_dim", "classes", "encoder_module",
               "decoder_module", "missing")


def estimator_settings() -> list[dataclasses.Field]:
    """The fields behind :class:`~elbokit.nn.VAE`'s arguments, in signature order
    (the positional latent size first)."""
    fields = [f for cls in (ArchitectureConfig, TrainingConfig) for f in dataclasses.fields(cls)
              if f.name not in DATA_FIELDS]
    return sorted(fields, key=lambda f: not f.metadata["positional"])


def cli_settings() -> list[dataclasses.Field]:
    """The fields that are options of ``elbokit fit vae``."""
    return [f for f in estimator_settings() if f.metadata["cli"]]


# The deterministic Autoencoder's settings: these fields, in signature order, with the
# defaults and help where it differs from the VAE (elbokit.nn.autoencoder)
AE_LIKELIHOODS = ("bernoulli", "gaussian")  # cross-entropy, squared error
AUTOENCODER_SETTINGS = ("latent_dim", "likelihood", "arch", "encoder", "decoder", "hidden",
                        "image_shape", "epochs", "batch_size", "lr", "lr_schedule", "seed",
                        "device", "progress")
AUTOENCODER_DEFAULTS = {"likelihood": "bernoulli", "epochs": MIN_EPOCHS, "device": "cpu",
                        "progress": False}
AUTOENCODER_HELP = {"likelihood": "bernoulli (data in [0, 1]: cross-entropy) or gaussian "
                                  "(squared error)."}


def autoencoder_settings() -> list[dataclasses.Field]:
    """The fields behind :class:`~elbokit.nn.autoencoder.Autoencoder`'s arguments, in
    signature order (its defaults: ``estimator_default`` unless
    ``AUTOENCODER_DEFAULTS`` says otherwise)."""
    fields = {f.name: f for f in estimator_settings()}
    return [fields[name] for name in AUTOENCODER_SETTINGS]


def auto_epochs(n_rows: int, batch_size: int) -> int:
    """The epochs of ``epochs="auto"``: ceil(MIN_STEPS / steps per epoch), clipped to
    [MIN_EPOCHS, MAX_EPOCHS], for ``n_rows`` training rows in batches of ``batch_size``.
    2,400 colour 32x32 patches (1,920 training rows, 15 steps an epoch) get 67 epochs,
    where 10 left grey-green reconstructions (benchmarks/colour.py); digits (1,437 rows)
    84; data sets of 12,673 rows or more keep 10 (MNIST's 60,000: 469 steps an epoch)."""
    steps = max(1, math.ceil(n_rows / batch_size))
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps)))


def auto_alpha(n_features: int) -> float:
    """M2's ``alpha="auto"``: ALPHA_PER_FEATURE x d for rows of d features. An unlabeled
    row pulls q(y|x) towards the classes of the better bounds L(x, y), whose spread over
    the classes is a sum over the d features; a labeled row's log q(y|x) is one term, so
    its weight grows with d to keep the two in balance. Chosen on held-out training rows
    (20% held out, labels drawn from the rest; ``benchmarks/semisupervised.py --alphas``):
    digits (64 pixels, 50 labels, 5 seeds) was best at 3 (median accuracy 91.6%, against
    90.9% at 1, 89.9% at 0.3 and 10, worse at 30), hence 3/64; Fashion-MNIST (784 pixels,
    100 labels, 3 minutes a fit) gets 36.75, where 1 gave 57.6% and 65.2% (seeds 0, 1),
    10 gave 75.4% and 68.4%, and 100 gave 75.5% (seed 0); M1+M2 on 10-dimensional codes
    gets 0.47, within a point of 0.3 and 1 on digits (3 seeds)."""
    return ALPHA_PER_FEATURE * n_features


def auto_validation(n_rows: int, validation_given: bool,
                    batch_size: int = 128) -> tuple[float, int]:
    """(validation_fraction, patience) of "auto" for a fit of ``n_rows`` rows in batches
    of ``batch_size``: at most SMALL_DATA_ROWS (``epochs="auto"`` passes over each row
    over MIN_EPOCHS times) hold VALIDATION_FRACTION out (none if rows are given) and stop
    after AUTO_PATIENCE epochs or AUTO_PATIENCE_STEPS optimizer steps without a better
    validation ELBO, whichever is longer; more hold nothing out. Without it a VAE on 560
    cells ends 4,900 nats below; a patience of 10 epochs alone (30 steps on 300 digits)
    stopped on the noise of a small validation set and cost 3.6 nats (breast cancer) and
    22 (300 digits) at the median where nothing overfits, the longer one 0.9 and 12
    (benchmarks/small_data.py)."""
    small = n_rows <= SMALL_DATA_ROWS
    fraction = VALIDATION_FRACTION if small and not validation_given else 0.0
    if not (small and (fraction or validation_given)):
        return fraction, 0
    steps = max(1, math.ceil(n_rows * (1 - fraction) / batch_size))  # an epoch's
    return fraction, max(AUTO_PATIENCE, math.ceil(AUTO_PATIENCE_STEPS / steps))


def config_kwargs(cls, source) -> dict:
    """The settings of ``cls`` read off ``source`` (an estimator or a config) by name,
    leaving out the data's fields."""
    return {f.name: getattr(source, f.name) for f in dataclasses.fields(cls)
            if f.name not in DATA_FIELDS}


def _check_module_record(part: str, name: str, record) -> None:
    """A custom network's record: ``{"class": str, "module": str, "args": {JSON} or
    None}`` (files written before "module" was kept hold only "class" and "args"),
    present exactly when the network is "custom"."""
    if name != "custom":
        if record is not None:
            raise ParameterError(f"{part}_module is recorded for a custom {part} only; the "
                                 f"{part} is {name!r}")
        return
    if not (isinstance(record, dict) and set(record) in ({"class", "args"},
                                                         {"class", "module", "args"})
            and isinstance(record["class"], str) and isinstance(record.get("module", ""), str)
            and (record["args"] is None or isinstance(record["args"], dict))):
        raise ParameterError(f"{part}='custom' needs {part}_module = {{'class': name, "
                             f"'module': name, 'args': {{...}} or None}}; got "
                             f"{str(record)[:60]}")
    if record["args"] is not None and json_value(record["args"]) != record["args"]:
        raise ParameterError(f"the {part}'s constructor arguments must be JSON values "
                             f"(dicts with string keys, lists, strings, numbers, booleans, "
                             f"None); got {str(record['args'])[:80]}")
