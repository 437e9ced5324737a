"""Fuzzing of saved runs (issue 13): hypothesis mutates every file of a small saved run
(each classical kind, a VAE, an Autoencoder, a VAE checkpoint, run.json and
metrics.json, and recorded runs of the VAE's variants: VampPrior, mixture prior,
gated + EMA + clamp, IAF, conditional, through ``evaluate`` and ``sample``): JSON fields
(type swaps, huge and negative numbers, NaN strings, deleted keys), bytes and lengths
of the safetensors files, with the checksums recomputed or not. Every mutation must
give a correct result or a one-line elbokit error: never another exception, a NaN
reported as success, or a change to the run.

The budget is small here (``ELBOKIT_FUZZ_EXAMPLES``, default 10 per target, about ten
seconds in all); ``benchmarks/fuzz.py runs`` runs the same tests with a large one.
"""

import io
import json
import os
import shutil
import tempfile
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import ElbokitError  # noqa: E402
from elbokit.persistence import DESCRIPTION_KEY, description_digest, sha256_file  # noqa: E402

torch = pytest.importorskip("torch")
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.train import checkpoint as ckpt  # noqa: E402

EXAMPLES = int(os.environ.get("ELBOKIT_FUZZ_EXAMPLES", "10"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 50,
                suppress_health_check=list(HealthCheck), database=None)
from elbokit.persistence.model_file import DESCRIBED  # noqa: E402
CHECKPOINT_DESCRIBED = ("architecture", "optimizer", "tensor_file", "epoch")


# --------------------------------------------------------------------------- the corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One saved run of each kind, fitted on 60 digits rows (a few seconds in all)."""
    from elbokit.data import load
    from elbokit.models import classical_registry, save_model
    from elbokit.runs import fit_and_record

    root = tmp_path_factory.mktemp("corpus")
    digits = load("digits")
    X = digits.train[:60]
    np.save(root / "data.npy", X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, cls in classical_registry().items():
            model = cls(2, max_iter=30) if kind in ("fa", "linear-ae", "vbpca") else cls(2)
            save_model(model.fit(X), root / kind)
        vae = VAE(2, hidden=(8,), epochs=1, progress=False, seed=0)
        vae.fit(X)
        vae.save(root / "vae")
        from elbokit.nn import Autoencoder

        Autoencoder(2, hidden=(8,), epochs=1, seed=0).fit(X).save(root / "ae")
        fit_and_record(classical_registry()["pca"](2), digits, root / "pca-run",
                       spec="digits", seed=0, test_fraction=0.2)
    return root


def _copy(corpus: Path, name: str, into: Path) -> Path:
    shutil.copytree(corpus / name, into / name)
    return into / name


def _digest(directory: Path) -> dict:
    return {str(p.relative_to(directory)): sha256_file(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- mutations

JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.sampled_from([0, -1, 1, 2, 10**6, 10**9, 2**31, 2**63, 10**30, 0.0, -0.0, 1e-300,
                     1e308, "NaN", "inf", "-Infinity", "", "__class__", "../x", [], {},
                     [1], [0, 0], [10**9, 10**9], {"shape": [1], "dtype": "F32"}]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.lists(st.integers(-3, 70), max_size=4),
)


def _paths(obj, prefix=()):
    """Every path to a node of a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _paths(value, prefix + (index,))


def _mutate_json(data, obj):
    paths = [p for p in _paths(obj) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="op")
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.sampled_from(["x_", "__dict__", "evil", "n_features_in_"]))] = \
            data.draw(JSON_VALUES)
    else:
        parent[path[-1]] = data.draw(JSON_VALUES, label="value")
    return obj


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))  # NaN/inf are written as NaN/Infinity: refused


def _refresh_model_json(directory: Path, tensor_file: str) -> None:
    """Recompute the checksums of model.json as an attacker would."""
    meta = json.loads((directory / "model.json").read_text())
    if isinstance(meta.get("sha256"), dict):
        if (directory / tensor_file).is_file():
            meta["sha256"][tensor_file] = sha256_file(directory / tensor_file)
        try:
            meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, DESCRIBED)
        except (TypeError, ValueError):
            pass
    _write_json(directory / "model.json", meta)


def _mutate_bytes(data, path: Path) -> None:
    raw = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(raw[:8], "little") if len(raw) >= 8 else len(raw)
    op = data.draw(st.sampled_from(["flip-header", "flip", "truncate", "nan", "length"]))
    if op == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif op == "length":
        raw[:8] = data.draw(st.sampled_from([0, 1, 2**31, 2**63, header_end + 4,
                                             header_end - 12])).to_bytes(8, "little")
    elif op == "nan" and len(raw) >= header_end + 8:
        at = data.draw(st.integers(header_end, len(raw) - 4))
        raw[at:at + 4] = np.float32(np.nan).tobytes()
    else:
        high = min(len(raw), header_end) if op == "flip-header" else len(raw)
        at = data.draw(st.integers(0, max(high - 1, 0)))
        raw[at] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))


def _mutate_model_dir(data, directory: Path, tensor_file: str = "weights.safetensors") -> None:
    if data.draw(st.booleans(), label="json?"):
        meta = json.loads((directory / "model.json").read_text())
        _write_json(directory / "model.json", _mutate_json(data, meta))
    else:
        _mutate_bytes(data, directory / tensor_file)
    if data.draw(st.booleans(), label="refresh checksums?"):
        _refresh_model_json(directory, tensor_file)


def _mutate_checkpoint(data, run: Path) -> None:
    """Mutate checkpoint.json or its tensor file, then maybe recompute both checksums."""
    record = run / "checkpoint.json"
    meta = json.loads(record.read_text())
    if data.draw(st.booleans(), label="json?"):
        _write_json(record, _mutate_json(data, meta))
    else:
        _mutate_bytes(data, run / meta["tensor_file"])
    if data.draw(st.booleans(), label="refresh checksums?"):
        meta = json.loads(record.read_text())
        name = meta.get("tensor_file")
        if isinstance(name, str) and ckpt.CHECKPOINT_NAME.fullmatch(name) and \
                (run / name).is_file():
            meta["sha256"] = sha256_file(run / name)
        try:
            meta["description_sha256"] = description_digest(meta, CHECKPOINT_DESCRIBED)
        except (TypeError, ValueError):
            pass
        _write_json(record, meta)


# --------------------------------------------------------------------------- the oracle

def _cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_clean(code: int, out: str, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("elbokit: error: "), err
    else:
        assert "nan" not in out.lower().replace("nats", ""), out  # no NaN as success
        assert " inf" not in out, out


@pytest.mark.parametrize("kind", ["pca", "ppca", "fa", "linear-ae", "vbpca", "vae", "ae"])
@FUZZ
@given(data=st.data())
def test_mutated_model_directory(corpus, kind, data):
    _check_mutated_copy(data, corpus / kind, lambda directory, tmp: [
        ["evaluate", str(directory), "--data", str(corpus / "data.npy")]])


def _check_mutated_copy(data, source: Path, commands) -> None:
    """Mutate a copy of the model directory ``source``; each of ``commands(copy, tmp)``
    must give numbers or one line, and change nothing in the copy."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = _copy(source.parent, source.name, Path(tmp))
        _mutate_model_dir(data, directory)
        before = _digest(directory)
        for argv in commands(directory, Path(tmp)):
            _assert_clean(*_cli(argv))
        assert _digest(directory) == before


@FUZZ
@given(data=st.data())
def test_mutated_run_and_metrics_json(corpus, data):
    from elbokit.runs import image_shape_of, matching_run, read_metrics, read_run

    with tempfile.TemporaryDirectory() as tmp:
        run = _copy(corpus, "pca-run", Path(tmp))
        name = data.draw(st.sampled_from(["run.json", "metrics.json"]))
        obj = json.loads((run / name).read_text())
        _write_json(run / name, _mutate_json(data, obj))
        key = json.loads((corpus / "pca-run" / "run.json").read_text())["key"]
        assert matching_run(run, key) in (True, False)
        for read in (read_run, read_metrics, lambda r: image_shape_of(r, 64)):
            try:
                read(run)
            except ElbokitError as exc:
                assert "\n" not in str(exc)
        code, out, err = _cli(["sample", str(run), "-n", "4", "--out", str(run / "s.png")])
        _assert_clean(code, out, err)


# --------------------------------------------------------------------------- VAE variants

# the VAE's options whose saved state is more than the standard model's: a prior with
# parameters of its own (pseudo-inputs, a mixture), the recipe's gated layers with the
# averaged weights and the clamp, an inverse autoregressive flow, labels to condition on
VAE_VARIANTS = {
    "vamp": dict(prior="vamp", prior_components=3),
    "mog": dict(prior="mog", prior_components=3),
    "gated-ema": dict(activation="gated", clamp_logvar=True, ema=0.9),
    "iaf": dict(posterior="iaf", flow_steps=1, flow_hidden=(8,)),
    "conditional": dict(conditional=True),
}


@pytest.fixture(scope="module")
def variant_corpus(tmp_path_factory):
    """One recorded digits run of each VAE variant (1 epoch, 8 hidden units, ~1 s each),
    so that ``sample`` knows the image shape and ``evaluate`` the labels."""
    from elbokit.data import load
    from elbokit.runs import fit_and_record

    root = tmp_path_factory.mktemp("variants")
    digits = load("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, options in VAE_VARIANTS.items():
            vae = VAE(2, hidden=(8,), epochs=1, progress=False, seed=0, **options)
            fit_and_record(vae, digits, root / name, spec="digits", seed=0,
                           test_fraction=0.2)
    return root


@pytest.mark.parametrize("variant", list(VAE_VARIANTS))
@settings(FUZZ, max_examples=max(1, EXAMPLES // 3))  # two commands each: a third the budget
@given(data=st.data())
def test_mutated_vae_variant(variant_corpus, variant, data):
    """Every saved field of each variant's model.json and every byte of its tensors:
    ``evaluate`` and ``sample`` (which reads the prior's own tensors) give numbers or one
    line, and change nothing in the run."""
    _check_mutated_copy(data, variant_corpus / variant, lambda directory, tmp: [
        ["evaluate", str(directory), "--data", "digits"],
        ["sample", str(directory), "-n", "4", "--out", str(tmp / "s.png")]])


CHECKPOINT_VARIANTS = {"standard": {}, **{name: VAE_VARIANTS[name]
                                           for name in ("vamp", "gated-ema")}}


@pytest.fixture(scope="module")
def variant_checkpoints(corpus, tmp_path_factory):
    """A 1-epoch checkpoint of the standard VAE, the VampPrior (pseudo-inputs with their
    Adam state) and the gated recipe (the averaged weights beside the trained ones), on
    the corpus's rows."""
    root = tmp_path_factory.mktemp("variant-checkpoints")
    X = np.load(corpus / "data.npy")
    for name, options in CHECKPOINT_VARIANTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VAE(2, hidden=(8,), epochs=1, progress=False, seed=0, **options).fit(
                X, checkpoint_dir=root / name)
    return root


@pytest.mark.parametrize("variant", list(CHECKPOINT_VARIANTS))
@FUZZ
@given(data=st.data())
def test_mutated_checkpoint(corpus, variant_checkpoints, variant, data):
    """A resumed fit from a mutated checkpoint trains to finite weights (the prior's and
    the averaged ones included) or refuses with one line. (The crafted Adam state of
    issue 13 crashed the interpreter.)"""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / variant
        shutil.copytree(variant_checkpoints / variant, run)
        _mutate_checkpoint(data, run)
        X = np.load(corpus / "data.npy")
        vae = VAE(2, hidden=(8,), epochs=2, progress=False, seed=0,
                  **CHECKPOINT_VARIANTS[variant])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vae.fit(X, checkpoint_dir=run, resume=True)
        except ElbokitError as exc:
            assert str(exc) and "\n" not in str(exc), str(exc)
            return
        for name, value in vae.model_.state_dict().items():
            assert torch.isfinite(value).all(), name
        assert all(np.isfinite(h["train_elbo"]) for h in vae.history_)
        assert np.isfinite(vae.score_samples(X)).all()
