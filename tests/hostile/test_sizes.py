"""Every size is bounded before it is allocated: latent, hidden, prior components, the
draws of z per row, the classes of a conditional VAE (--latent 1e9 and --hidden 1e9 were
allocator tracebacks, --prior-components 100000 and --n-samples 1e7 too, 40,000 labels
an endless run). Nothing large is allocated here: each is refused from its figure."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit import VAE  # noqa: E402
from elbokit.exceptions import DataError, ParameterError  # noqa: E402
from elbokit.nn.autoencoder import Autoencoder  # noqa: E402
from elbokit.persistence import memory  # noqa: E402


@pytest.fixture
def X():
    return np.random.default_rng(0).uniform(size=(60, 16))


@pytest.fixture
def two_gib(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * 2**30)


def _fit(X, y=None, **settings):
    settings = {"latent_dim": 2, "hidden": (8,), "likelihood": "bernoulli", "epochs": 1,
                "progress": False, **settings}
    return VAE(**settings).fit(X, y)


@pytest.mark.parametrize("settings, match", [
    ({"latent_dim": 10**9}, r"building the networks of L = 1000000000, hidden 8, 16 features "
                            r"needs \d+\.\d GiB of memory but only 2\.0 GiB is available; lower"),
    ({"hidden": (10**9,)}, r"networks of L = 2, hidden 1000000000, .*needs .* GiB"),
    ({"latent_dim": 10**30}, r"hold more than 2\^63 numbers"),
    ({"prior": "mog", "prior_components": 10**9}, r"1000000000 prior components.* needs"),
])
def test_network_sizes_are_refused_before_the_build(X, two_gib, settings, match):
    with pytest.raises(ParameterError, match=match):
        _fit(X, **settings)


def test_the_draws_of_a_step_are_refused_before_the_first_step(X, two_gib):
    with pytest.raises(ParameterError, match=r"one step of \d+ rows x 10000000 draws of "
                                             r"z \d+\.\d GiB\) needs"):
        _fit(X, n_samples=10**7)
    assert _fit(X, batch_size=10**9).history_  # a minibatch is at most every row


@pytest.mark.parametrize("prior", ["vamp", "mog"])
def test_more_prior_components_than_rows_is_refused(X, prior):
    with pytest.raises(ParameterError, match=rf"prior_components = 100000 exceeds the \d+ "
                                             rf"training rows: a {prior} prior"):
        _fit(X, prior=prior, prior_components=100_000)


def test_a_label_per_row_is_not_a_class(X):
    with pytest.raises(DataError, match=r"y holds 60 distinct labels in 60 rows.*covariate"):
        _fit(X, np.arange(60), conditional=True)
    assert _fit(X, np.arange(60) % 3, conditional=True).classes_.tolist() == [0, 1, 2]


def test_the_autoencoder_is_bounded_too(X, two_gib):
    with pytest.raises(ParameterError, match="building the networks of L = 1000000000"):
        Autoencoder(10**9, hidden=(8,)).fit(X)


def test_under_ulimit_v_the_build_is_refused_with_the_figure(tmp_path):
    """A real RLIMIT_AS (a subprocess): 512 MiB beyond what the process maps. Networks of
    about 1 GiB are refused with one line, not an allocator traceback (the probe took the
    limit itself for the room, ignoring the gigabytes a Python with torch maps)."""
    code = (
        "import resource, numpy as np, torch\n"
        "from elbokit import VAE\nfrom elbokit.persistence import memory\n"
        "from elbokit.exceptions import ParameterError\n"
        "limit = memory._mapped_bytes() + 2**29\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "X = np.random.default_rng(0).uniform(size=(20, 64))\n"
        "try:\n"
        "    VAE(2, hidden=(2_000_000,), likelihood='bernoulli', epochs=1,\n"
        "        progress=False).fit(X)\n"
        "except ParameterError as exc:\n"
        "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "building the networks of L = 2, hidden 2000000, 64 features needs" in done.stdout


def test_importance_samples_are_bounded_before_any_work():
    from elbokit import PPCA, evaluate

    assert evaluate.check_importance(5000) == 5000
    with pytest.raises(ParameterError, match=r"^--k = 1000000000 importance samples per row is "
                                             r"more than 1,000,000"):
        evaluate.check_importance(10**9, "--k")
    model = PPCA(1).fit(np.random.default_rng(0).standard_normal((20, 3)))
    with pytest.raises(ParameterError, match="n_importance = 1000000000"):
        evaluate.log_likelihood(model, np.zeros((2, 3)), n_importance=10**9, y=[0, 1])


def test_a_resize_beyond_any_image_is_refused(tmp_path):
    from PIL import Image

    from elbokit.data import load

    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match=r"resize 50000x1: each side must be at most 8192"):
        load(str(tmp_path), resize=(50000, 1))
    assert load(str(tmp_path), resize=(4, 4), test_fraction=0.34).train.shape[1] == 16


@pytest.mark.timeout(90)
def test_importance_sampling_with_a_huge_k_stops_promptly_on_ctrl_c(seconds_to_stop):
    """k = 10^6 on 200 rows runs for minutes in bounded chunks; SIGINT ends it within
    seconds (KeyboardInterrupt reaches the loop between chunks)."""
    import signal

    code = ("import numpy as np\nfrom elbokit import VAE, evaluate\n"
            "X = np.random.default_rng(0).uniform(size=(200, 16))\n"
            "model = VAE(2, hidden=(8,), likelihood='bernoulli', epochs=1,\n"
            "            progress=False).fit(X)\n"
            "print('estimating', flush=True)\n"
            "evaluate.log_likelihood(model, X, n_importance=1_000_000)\n")
    seconds, code, stderr = seconds_to_stop(code, "estimating", signal.SIGINT)
    assert seconds < 10 and code != 0 and "KeyboardInterrupt" in stderr  # 2 s idle


def test_on_a_gpu_its_free_memory_is_what_counts(X, monkeypatch):
    """The model on a GPU: its free memory, not the host's, bounds the step (faked here:
    no GPU is needed to ask the question)."""
    from elbokit.nn import _sizes
    from elbokit.nn.config import ArchitectureConfig, TrainingConfig

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 80 * 2**30))
    architecture = ArchitectureConfig(n_features=16, latent_dim=2, hidden=(8,),
                                      likelihood="bernoulli")
    _sizes.check_training_sizes(architecture, TrainingConfig(), 60, device="cuda:0")
    with pytest.raises(ParameterError, match=r"more memory on cuda:0 but only 1\.0 GiB is "
                                             r"free; lower"):
        _sizes.check_training_sizes(architecture, TrainingConfig(n_samples=10**6), 60,
                                    device="cuda:0")
