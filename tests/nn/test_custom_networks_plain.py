"""Plain torch modules as a VAE's or an Autoencoder's networks (no config): they train,
save with one warning, and load with the user's code given explicitly (import_networks,
a class, or the module object); a decoder ending in a sigmoid under the Bernoulli
likelihood is refused at fit."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_same_weights, edit_model_json  # noqa: E402

from elbokit.exceptions import ModelFileError, ParameterError  # noqa: E402
from elbokit.models import load_model  # noqa: E402
from elbokit.nn import VAE, Autoencoder  # noqa: E402
from elbokit.nn.protocols import import_networks  # noqa: E402

NETS = '''
import torch
from torch import nn

class Enc(nn.Module):
    """A plain module, written for a plain training loop: no config."""
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 6))

    def forward(self, x):
        return self.net(x).chunk(2, dim=-1)

class Dec(nn.Module):
    def __init__(self, sigmoid=False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 64))
        self.sigmoid = sigmoid

    def forward(self, z):
        out = self.net(z)
        return torch.sigmoid(out) if self.sigmoid else out

class Code(nn.Module):
    """An autoencoder's encoder returning the code alone."""
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(64, 3)

    def forward(self, x):
        return self.net(x)

HELPER = 3  # not a class: left out
'''


@pytest.fixture()
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


@pytest.fixture(scope="module")
def rows(digits):
    return digits.train[:300], digits.test[:50]


def _fit(cls, nets, train, **modules):
    found = import_networks(str(nets))
    torch.manual_seed(0)
    built = {part: found[name]() for part, name in modules.items()}
    return cls(3, epochs=1, batch_size=64, **built).fit(train), found


def test_import_networks_returns_the_module_classes_by_name(nets, tmp_path, monkeypatch):
    found = import_networks(str(nets))
    assert sorted(found) == ["Code", "Dec", "Enc"]  # torch's nn is a module: not listed
    assert all(issubclass(c, torch.nn.Module) for c in found.values())
    assert list(import_networks(f"{nets}:Dec")) == ["Dec"]
    # a module name, with a dict attribute holding the classes
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mynets.py").write_text(NETS + "\nNETWORKS = {'a': Enc, 'b': Dec}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sorted(import_networks("pkg.mynets:NETWORKS")) == ["Dec", "Enc"]
    assert sorted(import_networks("pkg.mynets")) == ["Code", "Dec", "Enc"]


@pytest.mark.parametrize("text, message", [
    (None, r"no file .*missing\.py"),
    ("def broken(:\n", r"syntax error in bad\.py line 1"),
    ("raise RuntimeError('no GPU here')\n", r"importing it raised RuntimeError: no GPU here"),
    ("import torch\nX = 1\n", r"defines no torch\.nn\.Module class"),
])
def test_import_networks_fails_in_one_line_naming_the_source(tmp_path, text, message):
    path = tmp_path / ("missing.py" if text is None else "bad.py")
    if text is not None:
        path.write_text(text)
    with pytest.raises(ParameterError, match=message) as caught:
        import_networks(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_import_networks_names_a_missing_attribute_or_module(nets):
    with pytest.raises(ParameterError, match="it has no attribute 'Nope'"):
        import_networks(f"{nets}:Nope")
    with pytest.raises(ParameterError, match="HELPER is not a torch.nn.Module class, nor"):
        import_networks(f"{nets}:HELPER")
    with pytest.raises(ParameterError, match="no module named 'no_such_networks_module'"):
        import_networks("no_such_networks_module")


def test_a_plain_module_pair_fits_saves_with_one_warning_and_loads(nets, rows, tmp_path):
    train, test = rows
    vae, found = _fit(VAE, nets, train, encoder="Enc", decoder="Dec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.save(tmp_path / "run")
    saved = [w for w in caught if "loading will need" in str(w.message)]
    assert len(saved) == 1  # one warning for both networks, naming both
    assert "encoder Enc and decoder Dec" in str(saved[0].message)
    assert saved[0].filename == __file__  # it points at the caller's save(), not elbokit
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    record = meta["settings"]["architecture"]["encoder_module"]
    assert record["class"] == "Enc" and record["args"] is None
    assert record["module"] == type(vae.encoder).__module__
    assert (tmp_path / "run" / "run.json").is_file()  # what the report reads
    reference = vae.encode(test)
    # the three ways of giving the code, each the same model
    for loaded in (VAE.load(tmp_path / "run", networks=found),
                   load_model(tmp_path / "run", networks=found),
                   VAE.load(tmp_path / "run", encoder_class=found["Enc"],
                            decoder_class=found["Dec"])):
        np.testing.assert_array_equal(loaded.encode(test), reference)
        assert_same_weights(loaded, vae)
    fresh = found["Enc"]()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    loaded = load_model(tmp_path / "run", encoder=fresh, networks={"Dec": found["Dec"]})
    np.testing.assert_array_equal(loaded.encode(test), reference)
    assert_same_weights(fresh.state_dict(), before)  # a copy got the weights


def test_loading_without_the_code_names_the_argument_and_the_flag(nets, rows, tmp_path):
    vae, found = _fit(VAE, nets, rows[0], encoder="Enc", decoder="Dec")
    with pytest.warns(UserWarning, match="loading will need"):
        vae.save(tmp_path)
    where = str(tmp_path / "model.json")
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path)
    message = str(caught.value)
    assert message == (f"{where} holds a custom encoder (class Enc); pass its class "
                       "(VAE.load(path, encoder_class=Enc)) or, on the command line, "
                       "--networks FILE.py that defines it")
    with pytest.raises(ModelFileError, match=r"class Dec\); the networks given define Enc"):
        VAE.load(tmp_path, networks={"Enc": found["Enc"]})
    with pytest.raises(ParameterError, match="networks must be the dict import_networks"):
        VAE.load(tmp_path, networks=["Enc"])
    with pytest.raises(ParameterError, match="not both"):
        VAE.load(tmp_path, encoder=found["Enc"](), encoder_class=found["Enc"])


def test_a_class_of_the_same_name_with_other_weights_is_named(nets, rows, tmp_path):
    vae, found = _fit(VAE, nets, rows[0], encoder="Enc", decoder="Dec")
    with pytest.warns(UserWarning):
        vae.save(tmp_path)

    class Enc(torch.nn.Module):  # the same name, another architecture
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(64, 6)

    with pytest.raises(ModelFileError, match=r"encoder_class Enc.*weight"):
        VAE.load(tmp_path, networks={**found, "Enc": Enc})

    class NeedsArguments(torch.nn.Module):
        def __init__(self, width):
            super().__init__()

    with pytest.raises(ModelFileError, match=r"NeedsArguments\(\) failed .*records no "
                                             r"constructor arguments.*encoder=NeedsArguments"):
        VAE.load(tmp_path, encoder_class=NeedsArguments, decoder_class=found["Dec"])


def test_a_record_written_before_the_module_name_was_kept_still_loads(tmp_path, rows):
    from test_custom_networks import MyDecoder, MyEncoder

    train, test = rows
    vae = VAE(3, encoder=MyEncoder(64, (16,), 3), decoder=MyDecoder(3, (16,), 64, 1),
              epochs=1, progress=False).fit(train)
    vae.save(tmp_path)

    def drop_module(meta):
        for part in ("encoder", "decoder"):
            del meta["settings"]["architecture"][f"{part}_module"]["module"]

    edit_model_json(tmp_path / "model.json", drop_module)
    back = VAE.load(tmp_path, encoder_class=MyEncoder, decoder_class=MyDecoder)
    np.testing.assert_array_equal(back.encode(test), vae.encode(test))


def test_a_decoder_ending_in_a_sigmoid_is_refused_under_bernoulli(nets, rows):
    train, _ = rows
    found = import_networks(str(nets))
    settings = {"epochs": 1, "progress": False}
    with pytest.raises(ParameterError, match=r"^the decoder must return logits under "
                                             r"likelihood 'bernoulli' \(its outputs on two "
                                             r"rows all lie in \[0\.\d\d, 0\.\d\d\]\): drop "
                                             r"its final sigmoid$"):
        VAE(3, decoder=found["Dec"](sigmoid=True), **settings).fit(train)
    with pytest.raises(ParameterError, match="must return logits"):
        Autoencoder(3, decoder=found["Dec"](sigmoid=True), epochs=1).fit(train)
    # the same module is a mean under the fixed-variance Gaussian: no complaint
    VAE(3, decoder=found["Dec"](sigmoid=True), likelihood="gaussian-fixed", **settings).fit(train)

    class NaNDecoder(torch.nn.Module):
        def forward(self, z):
            return torch.full((*z.shape[:-1], 64), float("nan"))

    with pytest.raises(ParameterError, match="NaN or inf"):
        VAE(3, decoder=NaNDecoder(), **settings).fit(train)


def test_an_autoencoder_takes_plain_modules_and_loads_them_back(nets, rows, tmp_path):
    train, test = rows
    ae, found = _fit(Autoencoder, nets, train, encoder="Code", decoder="Dec")
    assert ae.model_.config.encoder == ae.model_.config.decoder == "custom"
    assert ae.transform(test).shape == (len(test), 3)
    with pytest.warns(UserWarning, match="encoder Code and decoder Dec"):
        ae.save(tmp_path)
    back = load_model(tmp_path, networks=found)
    assert isinstance(back, Autoencoder)
    np.testing.assert_array_equal(back.reconstruct(test), ae.reconstruct(test))
    with pytest.raises(ModelFileError, match=r"Autoencoder\.load\(path, encoder_class=Code\)\) "
                                             r"or, on the command line, --networks"):
        Autoencoder.load(tmp_path)
    with pytest.raises(ParameterError, match="encoder must map x"):
        Autoencoder(4, encoder=found["Code"](), epochs=1).fit(train)
