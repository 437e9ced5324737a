"""Your own encoder and decoder (elbokit.nn.protocols): the same model as a preset
gives the same ELBO, saving and loading round-trips with the caller's classes, and bad
shapes or missing classes fail in one line."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from elbokit.data import load  # noqa: E402
from elbokit.exceptions import ModelFileError, ParameterError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.networks import ConvEncoder, MLPDecoder, MLPEncoder  # noqa: E402
from elbokit.nn.protocols import check_shapes, encoder_width  # noqa: E402


class MyEncoder(MLPEncoder):
    """The preset MLP encoder, told how to rebuild itself (a config dict)."""

    def __init__(self, n_features, hidden, latent_dim):
        super().__init__(n_features, tuple(hidden), latent_dim)
        self.config = {"n_features": n_features, "hidden": list(hidden),
                       "latent_dim": latent_dim}


class MyDecoder(MLPDecoder):
    def __init__(self, latent_dim, hidden, n_features, n_heads):
        super().__init__(latent_dim, tuple(hidden), n_features, n_heads)
        self.args = dict(latent_dim=latent_dim, hidden=list(hidden), n_features=n_features,
                         n_heads=n_heads)

    def elbokit_config(self):
        return self.args


class OneHeadDecoder(nn.Module):
    """Returns a tensor alone (one head), with any leading axes."""

    def __init__(self, latent_dim, n_features):
        super().__init__()
        self.config = {"latent_dim": latent_dim, "n_features": n_features}
        self.net = nn.Sequential(nn.Linear(latent_dim, 16), nn.ReLU(), nn.Linear(16, n_features))

    def forward(self, z):
        return self.net(z)


@pytest.fixture(scope="module")
def digits():
    data = load("digits")
    return data.train[:300], data.test[:100]


def _pair(latent=3, hidden=(16,), width=None):
    return (MyEncoder(64, hidden, width or latent),
            MyDecoder(latent, tuple(reversed(hidden)), 64, 1))


def _settings(**extra):
    return {"epochs": 2, "batch_size": 64, "progress": False, **extra}


def test_the_presets_modules_as_custom_ones_give_the_presets_elbo(digits):
    train, test = digits
    # autograd's path for both (the preset's written-out step has the same gradients to
    # rounding, tests/nn/test_fused_step.py; this test asks for the same bits)
    preset = VAE(3, hidden=(16,), fused_step=False, **_settings()).fit(train)
    start = VAE._build(preset.architecture_, seed=0)  # the preset's initial weights
    encoder, decoder = _pair()
    encoder.load_state_dict(start.encoder.state_dict())
    decoder.load_state_dict(start.decoder.state_dict())
    custom = VAE(3, encoder=encoder, decoder=decoder, **_settings()).fit(train)
    assert custom.architecture_.encoder == custom.architecture_.decoder == "custom"
    assert [h["train_elbo"] for h in custom.history_] == \
        [h["train_elbo"] for h in preset.history_]
    np.testing.assert_array_equal(custom.elbo(test, "iwae", n_samples=4),
                                  preset.elbo(test, "iwae", n_samples=4))
    # fit trains a copy: the caller's module keeps its initial weights
    torch.testing.assert_close(encoder.state_dict(), start.encoder.state_dict())


def test_save_and_load_round_trip_with_the_classes_and_fail_clearly_without(digits, tmp_path):
    train, test = digits
    encoder, decoder = _pair()
    vae = VAE(3, encoder=encoder, decoder=decoder, **_settings(epochs=1)).fit(train)
    vae.save(tmp_path)
    back = VAE.load(tmp_path, encoder_class=MyEncoder, decoder_class=MyDecoder)
    torch.testing.assert_close(back.model_.state_dict(), vae.model_.state_dict(),
                               rtol=0, atol=0)
    np.testing.assert_array_equal(back.encode(test), vae.encode(test))
    np.testing.assert_array_equal(back.score_samples(test), vae.score_samples(test))
    assert isinstance(back.encoder, MyEncoder)  # a fresh module, as fit was given
    with pytest.raises(ModelFileError, match="custom encoder .*encoder_class=MyEncoder"):
        VAE.load(tmp_path, decoder_class=MyDecoder)
    with pytest.raises(ModelFileError, match="MyDecoder.*failed"):
        VAE.load(tmp_path, encoder_class=MyDecoder, decoder_class=MyDecoder)

    class WiderEncoder(MyEncoder):  # same arguments, other weights
        def __init__(self, n_features, hidden, latent_dim):
            super().__init__(n_features, [h + 1 for h in hidden], latent_dim)

    with pytest.raises(ModelFileError, match="encoder_class MyEncoder.*needs"):
        VAE.load(tmp_path, encoder_class=WiderEncoder, decoder_class=MyDecoder)
    with pytest.raises(ParameterError, match="preset"):
        VAE(3, hidden=(8,), **_settings(epochs=1)).fit(train).save(tmp_path / "p")
        VAE.load(tmp_path / "p", encoder_class=MyEncoder)


def test_bad_shapes_fail_at_fit_naming_the_expected_shapes(digits):
    train, _ = digits
    encoder, decoder = _pair(latent=3)
    with pytest.raises(ParameterError, match=r"encoder must map x \(2, 64\).*\(2, 4\).*"
                                             r"returned \(2, 3\), \(2, 3\)"):
        VAE(4, encoder=encoder, **_settings()).fit(train)
    wrong_d = MyDecoder(3, (16,), 63, 1)
    with pytest.raises(ParameterError, match=r"decoder must map z \(2, 3\) to 1 tensor\(s\) "
                                             r"\(2, 64\).*returned \(2, 63\)"):
        VAE(3, decoder=wrong_d, **_settings()).fit(train)
    gaussian = MyDecoder(3, (16,), 64, 1)  # the Gaussian likelihood needs two heads
    with pytest.raises(ParameterError, match="2 tensor"):
        VAE(3, decoder=gaussian, likelihood="gaussian", **_settings()).fit(train)
    with pytest.raises(ParameterError, match=r"each \(2, 3\); it returned \(2, 6\)"):
        VAE(3, encoder=nn.Linear(64, 6), **_settings()).fit(train)  # a tensor, not a pair
    with pytest.raises(ParameterError, match="pass the module itself"):
        VAE(3, encoder="custom", **_settings()).fit(train)


def test_custom_networks_with_a_flow_is_evaluation_and_resume(digits, tmp_path):
    train, test = digits
    width = encoder_width(3, "iaf", flow_context=8)
    assert width == 7
    settings = dict(posterior="iaf", flow_context=8, flow_hidden=(16,))

    def networks():
        torch.manual_seed(0)  # the same initial weights for both runs
        return dict(encoder=MyEncoder(64, (16,), width), decoder=OneHeadDecoder(3, 64))

    whole = VAE(3, **networks(), **settings, **_settings()).fit(train)
    log_px = whole.log_likelihood_samples(test[:20], n_importance=16)
    assert np.all(np.isfinite(log_px))
    assert np.mean(log_px) >= np.mean(whole.elbo(test[:20], "b", n_samples=16)) - 1.0
    # one epoch, then resumed to two: the same weights as the uninterrupted run
    half = VAE(3, **networks(), **settings, **_settings(epochs=1))
    half.fit(train, checkpoint_dir=tmp_path)
    half.set_params(epochs=2).fit(train, checkpoint_dir=tmp_path, resume=True)
    torch.testing.assert_close(half.model_.state_dict(), whole.model_.state_dict())


def test_the_presets_keep_the_same_contract():
    for encoder, decoder in (("mlp", "mlp"), ("conv", "conv"), ("linear", "linear")):
        vae = VAE(2, encoder=encoder, decoder=decoder, likelihood="gaussian",
                  image_shape=(8, 8), **_settings())
        model = VAE._build(vae._architecture(64), seed=0)
        check_shapes(model, torch.rand(2, 64))
    conv = ConvEncoder((8, 8), 5, image_channels=3)
    mean, logvar = conv(torch.rand(4, 3 * 64))
    assert mean.shape == logvar.shape == (4, 5)
    assert math.ceil(8 / 2) + 3 == encoder_width(3, "iaf", 8)


def test_a_run_with_custom_networks_gets_its_report_with_the_classes(tmp_path):
    from elbokit.report import write_report
    from elbokit.runs import fit_and_record

    digits = load("digits")
    encoder, decoder = _pair(latent=2)
    vae = VAE(2, encoder=encoder, decoder=decoder, **_settings(epochs=1))
    fit_and_record(vae, digits, tmp_path / "runs" / "custom", spec="digits")
    fit_and_record(VAE(2, hidden=(16,), **_settings(epochs=1)), digits,
                   tmp_path / "runs" / "preset", spec="digits")
    with pytest.raises(ModelFileError, match="encoder_class=MyEncoder"):
        write_report(tmp_path / "runs")
    page = write_report(tmp_path / "runs", encoder_class=MyEncoder,
                        decoder_class=MyDecoder).read_text()
    # both runs drawn: samples ... manifold, completions, latent, KL per dimension, curves,
    # latent arithmetic each
    assert page.count("data:image/png;base64,") == 2 * 10
