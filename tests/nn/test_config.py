"""The config dataclasses are the one declaration of every VAE setting: the
estimator's signature, its checks, ``VAE.load``, the options of ``elbokit fit vae``
and the run records are derived from their fields."""

import dataclasses
import inspect
import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

import typer  # noqa: E402

from elbokit.exceptions import ModelFileError, ParameterError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.config import (ArchitectureConfig, TrainingConfig, cli_settings,  # noqa: E402
                               estimator_default, estimator_settings)


def _fit_vae_command():
    import click

    from elbokit.cli._app import app

    group = typer.main.get_command(app)
    return group.commands["fit"].commands["vae"], click


def test_the_estimator_signature_is_the_dataclass_fields_with_their_defaults():
    params = inspect.signature(VAE.__init__).parameters
    fields = estimator_settings()
    assert [p for p in params if p != "self"] == [f.name for f in fields]
    for f in fields:
        assert params[f.name].default == estimator_default(f), f.name
    # only the latent size is positional, as for every other elbokit model
    assert [p for p in params.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD] == [params["self"],
                                                                       params["latent_dim"]]
    assert set(VAE().get_params()) == {f.name for f in fields}


def test_every_field_has_help_and_only_the_resolved_ones_a_different_estimator_default():
    for cls in (ArchitectureConfig, TrainingConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata["help"].endswith("."), f.name
    changed = {f.name: estimator_default(f) for f in estimator_settings()
               if estimator_default(f) != f.default}
    assert changed == {"encoder": None, "decoder": None, "standardize": "auto",
                       "prior_components": None, "min_variance": None, "precision": "auto",
                       "likelihood": "auto", "epochs": "auto", "patience": "auto",
                       "validation_fraction": "auto"}


def test_one_latent_name_and_default_in_library_and_cli():
    command, _ = _fit_vae_command()
    latent = next(p for p in command.params if "--latent" in p.opts)
    assert latent.name == "latent_dim"
    assert latent.default == VAE().latent_dim == ArchitectureConfig(n_features=3).latent_dim


def test_the_cli_options_are_the_fields_with_their_help_and_defaults():
    command, click = _fit_vae_command()
    by_name = {p.name: p for p in command.params}
    for f in cli_settings():
        option = by_name[f.name]
        assert option.help == f.metadata["help"], f.name
        default = estimator_default(f)
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        assert option.default == (None if default == "auto" else default), f.name
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        assert flag in option.opts, f.name
    # the data decide these; --seed is the run's (split and fit)
    assert "image_shape" not in by_name and "n_features" not in by_name
    assert {"data", "out", "seed", "resume", "on_nan", "validation_fraction"} <= set(by_name)
    assert by_name["standardize"].secondary_opts == ["--no-standardize"]
    assert by_name["progress"].secondary_opts == ["--no-progress"]


@pytest.mark.parametrize("cls, field, value, message", [
    (ArchitectureConfig, "latent_dim", 0, "latent_dim must be >= 1"),
    (ArchitectureConfig, "arch", "rnn", "arch must be one of ['mlp', 'conv']"),
    (ArchitectureConfig, "flow_hidden", (8, 0), "flow hidden size must be >= 1"),
    (ArchitectureConfig, "sigma", -1.0, "sigma must be a finite positive number"),
    (ArchitectureConfig, "standardize", "yes", "standardize must be True or False"),
    (TrainingConfig, "lr_schedule", "step", "lr_schedule must be one of"),
    (TrainingConfig, "batch_size", 1.5, "batch_size must be an integer"),
    (TrainingConfig, "progress", 1, "progress must be True or False"),
])
def test_each_field_is_checked_from_its_declaration(cls, field, value, message):
    kwargs = {"n_features": 4} if cls is ArchitectureConfig else {}
    with pytest.raises(ParameterError) as info:
        cls(**kwargs, **{field: value})
    assert message in str(info.value)


def test_the_estimator_reaches_the_same_checks_at_fit():
    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    with pytest.raises(ParameterError, match="arch must be one of"):
        VAE(2, arch="rnn", progress=False).fit(X)
    with pytest.raises(ParameterError, match="flow_context must be >= 0"):
        VAE(2, posterior="iaf", flow_context=-1, progress=False).fit(X)


def test_fit_takes_no_setting_and_set_params_changes_the_fit():
    assert not {"epochs", "lr", "batch_size"} & set(inspect.signature(VAE.fit).parameters)
    X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    vae = VAE(2, hidden=(8,), epochs=3, progress=False).set_params(epochs=1).fit(X)
    assert len(vae.history_) == 1 and vae.training_.epochs == vae.get_params()["epochs"] == 1


def test_load_rebuilds_every_setting(tmp_path):
    X = np.random.default_rng(0).random((40, 16)).astype(np.float32)
    settings = dict(likelihood="gaussian", arch="conv", hidden=(8,), min_variance=0.01,
                    posterior="iaf", flow_steps=1, flow_hidden=(8,), flow_context=4,
                    standardize=True, epochs=1, batch_size=16, lr=2e-3, n_samples=2,
                    seed=3, progress=False, kl_warmup=1, free_bits=0.1, beta=0.5)
    vae = VAE(2, **settings).fit(X)
    vae.save(tmp_path)
    loaded = VAE.load(tmp_path).get_params()
    for name, value in settings.items():
        assert loaded[name] == value, name
    assert loaded["encoder"] == loaded["decoder"] == "conv" and loaded["image_shape"] == (4, 4)


def test_a_tampered_architecture_field_is_named():
    conv = ArchitectureConfig(n_features=16, latent_dim=2, arch="conv", encoder="conv",
                              decoder="conv", image_shape=(4, 4)).to_dict()
    assert ArchitectureConfig.from_dict(conv).arch == "conv"
    with pytest.raises(ModelFileError, match="hidden must be a list of integers"):
        ArchitectureConfig.from_dict({**conv, "hidden": [1.5]})


def test_the_iaf_encoder_is_wider_than_the_latent_size_without_changing_it():
    from elbokit.nn.model import VAENetwork

    config = ArchitectureConfig(n_features=6, latent_dim=3, hidden=(8,), posterior="iaf",
                                flow_context=5)
    model = VAENetwork(config)
    last = [m for m in model.encoder.modules() if hasattr(m, "out_features")][-1]
    assert last.out_features == 2 * (3 + math.ceil(5 / 2))
    assert model.config.latent_dim == 3 and model.decoder_mean(
        __import__("torch").zeros(2, 3)).shape == (2, 6)


def test_a_recorded_vae_run_has_its_latent_size_and_a_key_with_every_setting(tmp_path):
    from elbokit.data import load
    from elbokit.runs import fit_and_record, matching_run, read_run, run_key

    dataset = load("digits")
    vae = VAE(2, hidden=(8,), epochs=1, progress=False)
    fit_and_record(vae, dataset, tmp_path / "a", spec="digits", test_fraction=0.2)
    run = read_run(tmp_path / "a")
    assert run["latent"] == 2 and run["params"]["hidden"] == [8]
    key = run_key("vae", vae.get_params(), spec="digits", seed=0, test_fraction=0.2)
    assert matching_run(tmp_path / "a", key)
    longer = run_key("vae", vae.set_params(epochs=2).get_params(), spec="digits", seed=0,
                     test_fraction=0.2)
    assert not matching_run(tmp_path / "a", longer)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["epochs"] == metrics["iterations"] == 1
    assert not (tmp_path / "a" / "checkpoints").exists()  # only `fit vae` checkpoints


def test_the_autoencoder_and_fit_ae_take_the_declared_fields_with_their_defaults():
    from elbokit.cli._app import app
    from elbokit.nn import Autoencoder
    from elbokit.nn.config import AUTOENCODER_DEFAULTS, autoencoder_settings

    fields = autoencoder_settings()
    params = inspect.signature(Autoencoder.__init__).parameters
    assert [p for p in params if p != "self"] == [f.name for f in fields]
    for f in fields:
        assert params[f.name].default == AUTOENCODER_DEFAULTS.get(f.name, estimator_default(f))
    command = typer.main.get_command(app).commands["fit"].commands["ae"]
    by_name = {p.name: p for p in command.params}
    for f in fields:
        if f.metadata["cli"]:
            assert (f.metadata["flag"] or "--" + f.name.replace("_", "-")) in by_name[f.name].opts
    assert by_name["device"].default == "cpu" and by_name["hidden"].default == "400"
