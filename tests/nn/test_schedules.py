"""Training schedules (elbokit.nn.schedules): the joint updates and the EM-style
alternating phases of the lecture's "Using EM for training"."""

import warnings

import numpy as np
import pytest
import torch
from conftest import sample_linear_gaussian

from elbokit.exceptions import ParameterError
from elbokit.nn import VAE
from elbokit.nn.config import ArchitectureConfig, TrainingConfig
from elbokit.nn.schedules import encoder_parameters, phase
from elbokit.nn.train import train


def _split(model):
    """(encoder, decoder) state as {name: tensor copy}."""
    phi = {id(p) for p in encoder_parameters(model)}
    enc = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) in phi}
    dec = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in phi}
    return enc, dec


def _equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _changed(a, b):
    return all(not torch.equal(a[k], b[k]) for k in a)


def _fit(X, epochs, posterior="gaussian", **training):
    architecture = ArchitectureConfig(n_features=X.shape[1], latent_dim=2, hidden=(16,),
                                      posterior=posterior, flow_hidden=(8,), flow_context=4)
    config = TrainingConfig(epochs=epochs, batch_size=16, lr=1e-2, progress=False,
                            **training)
    model = VAE._build(architecture, 0)
    start = _split(model)
    train(model, X, config, architecture)
    return start, _split(model)


def test_phases_count_global_steps_from_e():
    config = TrainingConfig(schedule="alternating", e_steps=3, m_steps=2)
    assert [phase(config, s) for s in range(7)] == ["e", "e", "e", "m", "m", "e", "e"]
    assert phase(TrainingConfig(), 5) == "joint"


@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_e_phase_moves_only_the_encoder_and_m_phase_only_the_decoder(digits, posterior):
    """64 rows, batch 16: 4 steps per epoch; e_steps = m_steps = 4 makes epoch 1 an E
    phase and epoch 2 an M phase. Bitwise: in E no decoder weight moves (every encoder
    weight, the flow's included, does); in M no encoder weight moves, although Adam
    has momentum for them from the E phase (a zero gradient would still move them)."""
    X = digits.train[:64]
    settings = dict(schedule="alternating", e_steps=4, m_steps=4, posterior=posterior)
    (enc0, dec0), (enc1, dec1) = _fit(X, 1, **settings)
    _, (enc2, dec2) = _fit(X, 2, **settings)
    assert _equal(dec0, dec1) and _changed(enc0, enc1)
    assert _equal(enc1, enc2) and _changed(dec1, dec2)
    # the joint schedule moves both in the first epoch
    _, (enc_joint, dec_joint) = _fit(X, 1, posterior=posterior)
    assert _changed(enc0, enc_joint) and _changed(dec0, dec_joint)


def test_both_schedules_reach_the_factor_analysis_optimum(fa_problem):
    """A linear-Gaussian VAE (linear encoder and decoder, learned per-feature noise)
    contains FA, and its diagonal posterior can be exact (W rotated so that
    W^T Psi^-1 W is diagonal): both schedules' ELBO (50 samples) must come within 0.25
    nats (under 2%) of FA's maximum log-likelihood on the same 1000 rows (d=12, 3
    factors), and not above it. Measured: joint 0.07, alternating 1+1 0.12 (5+5: 0.09)."""
    from elbokit.linear import FactorAnalysis

    W, psi, mu = fa_problem
    X = sample_linear_gaussian(1000, W, psi, mu).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fa_loglike = FactorAnalysis(3).fit(X).score(X)
    for schedule in (dict(schedule="joint"), dict(schedule="alternating")):
        vae = VAE(3, likelihood="gaussian", decoder="linear", standardize=False, epochs=40,
                  batch_size=50, lr=5e-2, lr_schedule="cosine", progress=False,
                  **schedule).fit(X)
        elbo = vae.elbo(X, "b", n_samples=50).mean()
        assert fa_loglike - 0.25 < elbo < fa_loglike + 0.05, (schedule, elbo, fa_loglike)


def test_resume_mid_phase_equals_an_uninterrupted_run(digits, tmp_path):
    """300 rows, batch 64: 5 steps per epoch, phases of 3 + 4 steps, so the cut after
    epoch 2 (step 10) falls inside an E phase."""
    X = digits.train[:300]
    settings = dict(hidden=(16,), batch_size=64, schedule="alternating", e_steps=3,
                    m_steps=4, progress=False)
    full = VAE(2, epochs=4, **settings).fit(X)
    VAE(2, epochs=2, **settings).fit(X, checkpoint_dir=tmp_path)
    resumed = VAE(2, epochs=4, **settings).fit(X, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(full.model_.state_dict().values(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["train_elbo"] for h in resumed.history_] == [h["train_elbo"] for h in
                                                            full.history_]
    # resuming with another schedule would not continue the run: refused, as by the CLI
    with pytest.raises(ParameterError, match=r"e_steps changed from 3 \(the checkpoint's\) "
                                             "to 2"):
        VAE(2, epochs=5, **{**settings, "e_steps": 2}).fit(X, checkpoint_dir=tmp_path,
                                                            resume=True)


def test_bad_schedule_settings_are_one_line_errors():
    with pytest.raises(ParameterError, match="schedule must be one of"):
        TrainingConfig(schedule="em")
    with pytest.raises(ParameterError, match="e_steps must be >= 1"):
        TrainingConfig(schedule="alternating", e_steps=0)
    with pytest.raises(ParameterError, match="m_steps must be an integer"):
        VAE(2, m_steps=1.5, progress=False).fit(np.random.default_rng(0).random((10, 4)))
