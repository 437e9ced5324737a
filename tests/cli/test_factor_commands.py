"""The questionnaire workflow of issue 28 in the CLI: columns chosen by name, a fit on
every row (--test-fraction 0), evaluate scoring a file whole (with missing answers),
``elbokit factors`` and the report's pages for factor-analysis runs."""

import json

import numpy as np
import pandas as pd
import pytest

from elbokit import data
from elbokit.cli import main
from elbokit.exceptions import DataError
from elbokit.linear import PCA, FactorAnalysis
from elbokit.models import load_model

ITEMS = ["A1", "A2", "A3", "B1", "B2", "B3"]


def _questionnaire(n=240, seed=0):
    """Two factors of three items each (A, B), unit-free answers, plus an id and a text
    column; 1 in 17 rows has one missing answer."""
    rng = np.random.default_rng(seed)
    W = np.zeros((6, 2))
    W[:3, 0], W[3:, 1] = [0.8, 0.7, 0.6], [0.7, 0.6, 0.8]
    X = rng.standard_normal((n, 2)) @ W.T + 0.5 * rng.standard_normal((n, 6))
    frame = pd.DataFrame(X, columns=ITEMS)
    frame.insert(0, "id", np.arange(1, n + 1))
    frame["gender"] = np.where(np.arange(n) % 2, "male", "female")
    holes = frame[ITEMS].to_numpy().copy()
    for i in range(3, n, 17):
        holes[i, i % 6] = np.nan
    frame[ITEMS] = holes
    return frame


@pytest.fixture
def questionnaire(tmp_path):
    frame = _questionnaire()
    path = tmp_path / "q.csv"
    frame.to_csv(path, index=False, float_format="%.6f")
    return path, frame


@pytest.fixture
def complete_csv(questionnaire, tmp_path):
    """The questionnaire's rows without a missing answer, as a CSV file."""
    _, frame = questionnaire
    complete = tmp_path / "complete.csv"
    frame.dropna().to_csv(complete, index=False)
    return complete


def _one_line_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# --------------------------------------------------------------------------- columns

@pytest.mark.parametrize("argv, named", [
    # a text column: named with the way out; nothing is written
    (["fit", "fa", "--latent", "2"], ["'gender'", "--drop-columns gender"]),
    (["compare", "--test-fraction", "0", "--drop-columns", "id,gender"],
     ["--test-fraction must be above 0"]),
    (["factors", "--drop-columns", "id,gender", "--method", "scree"],
     ["--method must be one of"]),
], ids=["text-column", "compare-test-fraction-0", "factors-method"])
def test_bad_commands_are_one_line_errors_naming_the_problem(questionnaire, tmp_path, capsys,
                                                             argv, named):
    path, _ = questionnaire
    out = tmp_path / "out"
    err = _one_line_error(argv + ["--data", str(path), "--out", str(out)], capsys)
    assert all(text in err for text in named), err
    assert not (out / "model.json").exists()


def test_factors_needs_data():
    assert main(["factors"]) == 2  # --data is required (Typer's usage error)


@pytest.mark.parametrize("option, value, named", [
    ("--columns", "A1,A2,C7", "'C7'"), ("--drop-columns", "id,sex", "'sex'")])
def test_a_column_that_is_not_there_is_named(questionnaire, tmp_path, capsys, option, value,
                                             named):
    path, _ = questionnaire
    err = _one_line_error(["fit", "pca", "--data", str(path), "--latent", "1", option, value,
                           "--out", str(tmp_path / "o")], capsys)
    assert f"no column {named}" in err and "'gender'" in err  # the columns there are


def test_dropped_columns_are_not_fitted_and_the_fit_is_the_libraries(questionnaire, tmp_path):
    """fit fa --drop-columns id,gender fits the six items: run.json records them, and
    the recorded log-likelihoods are those of FactorAnalysis fitted in Python on the
    same training rows of those columns."""
    path, frame = questionnaire
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--data", str(path), "--latent", "2", "--drop-columns",
                 "id,gender", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["columns"] == ITEMS and run["feature_names"] == ITEMS
    assert run["key"]["columns"] == ITEMS
    dataset = data.load(str(path), drop_columns=["id", "gender"], allow_nan=True)
    reference = FactorAnalysis(2).fit(dataset.train)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_features"] == 6
    assert metrics["train_loglike"] == pytest.approx(reference.score(dataset.train), abs=1e-6)
    assert metrics["test_loglike"] == pytest.approx(reference.score(dataset.test), abs=1e-6)


def test_columns_keep_the_order_asked_for(questionnaire):
    path, frame = questionnaire
    dataset = data.load(str(path), columns="B3,A1", test_fraction=0, allow_nan=True)
    assert dataset.feature_names == ["B3", "A1"] and dataset.columns == ["B3", "A1"]
    np.testing.assert_allclose(dataset.train, frame[["B3", "A1"]].to_numpy(), atol=1e-6)


def test_builtin_tables_take_columns_and_arrays_refuse_them(tmp_path):
    wine = data.load("wine", drop_columns="proline,magnesium")
    assert wine.n_features == 11 and "proline" not in wine.feature_names
    np.save(tmp_path / "x.npy", np.ones((5, 3)))
    with pytest.raises(DataError, match="no column names"):
        data.load(str(tmp_path / "x.npy"), columns="a")
    with pytest.raises(DataError, match="not both"):
        data.load("wine", columns="ash", drop_columns="hue")
    with pytest.raises(DataError, match="images"):
        data.load("digits", columns="pixel_0_0")


@pytest.mark.parametrize("estimator", [FactorAnalysis(1), PCA(1)])
def test_a_dataframe_with_a_text_column_is_an_error_naming_it(estimator):
    frame = _questionnaire(n=40)
    with pytest.raises(DataError, match=r"column 'gender' is not numeric \(row 0: 'female'\)"):
        estimator.fit(frame.drop(columns="id").fillna(0.0))
    numbers_as_text = frame[ITEMS].fillna(0.0).astype(str)  # "0.123": still numbers
    assert estimator.fit(numbers_as_text).n_features_in_ == 6


# --------------------------------------------------------------------------- every row

def test_test_fraction_0_fits_every_row_and_says_there_is_no_test_set(questionnaire, tmp_path,
                                                                      capsys):
    path, frame = questionnaire
    out = tmp_path / "all"
    assert main(["fit", "fa", "--data", str(path), "--latent", "2", "--columns",
                 ",".join(ITEMS), "--test-fraction", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no test set" in printed and "test_loglike" not in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 0 and metrics["n_train"] == len(frame)
    assert not any(k.startswith("test_") and k != "test_note" for k in metrics)
    model = load_model(out)
    X = frame[ITEMS].to_numpy()
    assert metrics["train_loglike"] == pytest.approx(model.score(X), abs=1e-7)
    refit = FactorAnalysis(2).fit(X)  # the rows in the file's order, all of them
    assert metrics["train_loglike"] == pytest.approx(refit.score(X), abs=1e-6)


def test_compare_takes_columns_and_reuses_its_runs(questionnaire, tmp_path, capsys):
    path, _ = questionnaire
    argv = ["compare", "--data", str(path), "--latent", "2", "--models", "pca,fa",
            "--drop-columns", "id,gender", "--out", str(tmp_path / "c"), "--k", "5"]
    # the missing answers make PCA a failed row (exit 2); FA fits on the observed ones
    assert main(argv) == 2
    first = json.loads((tmp_path / "c" / "compare.json").read_text())["models"]
    assert first["pca"]["failed"] and np.isfinite(first["fa"]["test_loglike"])
    stamp = (tmp_path / "c" / "fa" / "model.json").stat().st_mtime_ns
    assert main(argv) == 2  # the same key (columns included): the FA run is reused
    assert (tmp_path / "c" / "fa" / "model.json").stat().st_mtime_ns == stamp
    capsys.readouterr()


def test_evaluate_scores_every_row_of_a_file_with_its_missing_answers(questionnaire, tmp_path,
                                                                      capsys):
    """The run was fitted on 80% of the rows of six columns; evaluate on the same file
    (id and gender still in it) reads the recorded columns and scores all the rows, NaN
    included: the printed mean is the model's own over the file's rows."""
    path, frame = questionnaire
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--data", str(path), "--latent", "2", "--drop-columns",
                 "id,gender", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(path)]) == 0
    printed = capsys.readouterr().out
    X = frame[ITEMS].to_numpy()
    expected = float(np.mean(load_model(out).score_samples(X)))
    assert f"every row: {len(frame)}" in printed
    assert f"{expected:.3f}" in printed.split("loglike")[1].splitlines()[0]
    assert f"{np.isnan(X).mean():.3f}" in printed  # the share of missing answers


def test_evaluate_refuses_missing_values_for_a_model_without_them(questionnaire, complete_csv,
                                                                  tmp_path, capsys):
    path, frame = questionnaire
    complete = complete_csv
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--data", str(complete), "--latent", "2", "--drop-columns",
                 "id,gender", "--out", str(out)]) == 0
    err = _one_line_error(["evaluate", str(out), "--data", str(path)], capsys)
    assert "missing value" in err and "accepts missing values" in err


# --------------------------------------------------------------------------- factors

def test_factors_prints_the_librarys_table_and_draws_the_scree(questionnaire, tmp_path,
                                                               capsys):
    """elbokit factors on the file (id and gender dropped) prints what
    suggest_n_factors gives on the complete rows of the six items, suggests the two
    simulated factors, and writes the scree and the table."""
    from elbokit.linear import suggest_n_factors

    path, frame = questionnaire
    out = tmp_path / "factors"
    assert main(["factors", "--data", str(path), "--drop-columns", "id,gender", "--seed", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = suggest_n_factors(frame[ITEMS].dropna(), "parallel", random_state=3)
    assert expected.n_factors == 2
    assert expected.to_text() in printed
    assert f"on the {len(frame.dropna())} rows without missing values" in printed
    assert (out / "scree.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "factors.json").read_text())
    assert saved["n_factors"] == 2 and saved["columns"] == ITEMS
    np.testing.assert_allclose(saved["table"]["observed"], expected.table["observed"], atol=1e-5)


def test_factors_heldout_uses_every_observed_answer(questionnaire, tmp_path, capsys):
    from elbokit.linear import suggest_n_factors

    path, frame = questionnaire
    assert main(["factors", "--data", str(path), "--columns", ",".join(ITEMS), "--method",
                 "heldout", "--max-factors", "2", "--out", str(tmp_path / "f")]) == 0
    printed = capsys.readouterr().out
    expected = suggest_n_factors(frame[ITEMS], "heldout", max_factors=2, random_state=0)
    assert expected.to_text() in printed and "rows without missing values" not in printed
    assert "parallel analysis suggests 2" in printed


def test_parallel_scree_marks_the_eigenvalues_above_the_random_ones(tmp_path):
    from elbokit import plots
    from elbokit.linear import suggest_n_factors

    frame = _questionnaire(n=400, seed=1)[ITEMS].dropna()
    result = suggest_n_factors(frame, "parallel")
    drawn = plots.parallel_scree_figure(result, tmp_path / "s.png")
    assert drawn["n_factors"] == 2 and drawn["above"].tolist() == [1, 2]
    np.testing.assert_allclose(drawn["observed"], result.table["observed"])
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="parallel-analysis result"):
        plots.parallel_scree_figure(suggest_n_factors(frame, "bic"), tmp_path / "b.png")


# --------------------------------------------------------------------------- the report

def _html_table(page, css_class):
    """The cells of the first <table class=css_class> of a page, row by row."""
    import re

    table = re.search(rf'<table class="{css_class}">(.*?)</table>', page, re.S)
    if table is None:
        return None
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


@pytest.fixture
def fa_run(questionnaire, tmp_path):
    path, frame = questionnaire
    out = tmp_path / "runs" / "fa"
    assert main(["fit", "fa", "--data", str(path), "--latent", "2", "--drop-columns",
                 "id,gender", "--out", str(out)]) == 0
    return out


def test_the_loadings_table_is_psychs_sorted_and_cut_solution(fa_run, questionnaire, capsys):
    """--rotation oblimin --cut 0.3: the table's numbers are factor_solution of the
    model's standardized loadings, items grouped by their main factor, |l| < 0.3
    blank; h2 is the same under every rotation (Lambda Phi Lambda' = A A')."""
    from elbokit.linear._interpret import factor_solution, standardized_loadings

    model = load_model(fa_run)
    A = standardized_loadings(model.loading_matrix(), model.noise_variances())
    expected = factor_solution(A, "oblimin")
    data_option = ["--data", str(questionnaire[0])]
    assert main(["report", str(fa_run), "--rotation", "oblimin", *data_option]) == 0
    page = (fa_run / "report.html").read_text()
    rows = _html_table(page, "loadings")
    assert rows[0] == ["item", "F1", "F2", "h2", "u2", "com"]
    items = [r for r in rows[1:] if r[0] in ITEMS]
    order = [r[0] for r in items]
    main_factor = [int(np.argmax(np.abs(expected.loadings[ITEMS.index(i)]))) for i in order]
    assert main_factor == sorted(main_factor) and set(main_factor) == {0, 1}
    assert sorted(order[:3]) in (["A1", "A2", "A3"], ["B1", "B2", "B3"])
    for row in items:
        j = ITEMS.index(row[0])
        for k in range(2):
            value = expected.loadings[j, k]
            assert row[1 + k] == ("" if abs(value) < 0.3 else f"{value:.2f}")
        assert row[3] == f"{expected.communalities[j]:.2f}"
        assert row[4] == f"{1 - expected.communalities[j]:.2f}"
    ss = next(r for r in rows if r[0] == "SS loadings")
    assert ss[1:3] == [f"{v:.2f}" for v in expected.ss_loadings]
    phi = _html_table(page, "factor-correlations")
    assert phi[1][2] == f"{expected.factor_correlation[0, 1]:.2f}"
    h2 = {r[0]: r[3] for r in items}
    for rotation in ("none", "varimax", "geomin"):
        assert main(["report", str(fa_run), "--rotation", rotation, "--cut", "0",
                     *data_option]) == 0
        page = (fa_run / "report.html").read_text()
        again = {r[0]: r[3] for r in _html_table(page, "loadings")[1:] if r[0] in ITEMS}
        assert again == h2
        assert "" not in [c for r in _html_table(page, "loadings")[1:] if r[0] in ITEMS
                          for c in r[1:3]]  # --cut 0 blanks nothing
        assert (_html_table(page, "factor-correlations") is None) == (rotation != "geomin")
    capsys.readouterr()


def test_the_fit_statistics_are_factanals_chi_square(fa_run, questionnaire):
    """chi-square = (n - 1 - (2d + 5)/6 - 2L/3)(log|Sigma| - log|S| + tr(Sigma^-1 S) - d)
    on the training rows (pairwise covariance: a few answers are missing), dof =
    ((d - L)^2 - (d + L))/2 = 4, p from chi2(4)."""
    from scipy import stats

    path, _ = questionnaire
    assert main(["report", str(fa_run), "--data", str(path)]) == 0
    page = (fa_run / "report.html").read_text()
    header, values = _html_table(page, "fit-statistics")
    cells = dict(zip(header, values))
    train = data.load(str(path), drop_columns="id,gender", allow_nan=True).train
    n, d, L = train.shape[0], 6, 2
    S = pd.DataFrame(train).cov(ddof=0).to_numpy()
    Sigma = load_model(fa_run).get_covariance()
    F = (np.linalg.slogdet(Sigma)[1] - np.linalg.slogdet(S)[1]
         + np.trace(np.linalg.solve(Sigma, S)) - d)
    chi_square = (n - 1 - (2 * d + 5) / 6 - 2 * L / 3) * F
    assert cells["n"] == str(n) and cells["dof"] == "4"
    assert cells["chi-square"] == f"{chi_square:.2f}"
    assert cells["p"] == f"{stats.chi2.sf(chi_square, 4):.3f}"
    assert "pairwise" in page


def test_the_reports_factor_count_does_not_depend_on_the_number_fitted(questionnaire,
                                                                       tmp_path):
    path, frame = questionnaire
    runs = tmp_path / "runs"
    for latent in ("1", "3"):
        assert main(["fit", "fa", "--data", str(path), "--latent", latent, "--drop-columns",
                     "id,gender", "--out", str(runs / f"fa{latent}")]) == 0
    assert main(["report", str(runs), "--data", str(path)]) == 0
    page = (runs / "report.html").read_text()
    import re

    captions = re.findall(r"<figcaption>(parallel analysis[^<]*)</figcaption>", page)
    assert len(captions) == 2
    assert all("2 eigenvalue(s) of the reduced correlation matrix above" in c for c in captions)
    assert "(1 factors fitted)" in captions[0] and "(3 factors fitted)" in captions[1]


def test_report_of_a_run_without_a_test_set_and_of_pca(questionnaire, complete_csv, tmp_path):
    path, frame = questionnaire
    complete = complete_csv
    runs = tmp_path / "runs"
    assert main(["fit", "fa", "--data", str(path), "--latent", "2", "--drop-columns",
                 "id,gender", "--test-fraction", "0", "--out", str(runs / "fa")]) == 0
    assert main(["fit", "pca", "--data", str(complete), "--latent", "2", "--columns",
                 ",".join(ITEMS), "--out", str(runs / "pca")]) == 0
    # two runs fitted on two files: a report of each, on its own --data
    assert main(["report", str(runs / "fa"), "--data", str(path)]) == 0
    assert main(["report", str(runs / "pca"), "--data", str(complete)]) == 0
    fa, pca = ((runs / name / "report.html").read_text() for name in ("fa", "pca"))
    assert "no test set" in fa
    assert fa.count('<table class="loadings">') == pca.count('<table class="loadings">') == 1
    assert fa.count('<table class="fit-statistics">') == 1  # FA's factor model only
    assert pca.count('<table class="fit-statistics">') == 0


def test_a_labelled_table_keeps_its_probes_but_not_the_vaes_numbers(tmp_path):
    out = tmp_path / "wine"
    assert main(["fit", "fa", "--data", "wine", "--latent", "2", "--standardize",
                 "--drop-columns", "proline", "--out", str(out)]) == 0
    assert main(["report", str(out), "--rotation", "promax"]) == 0
    page = (out / "report.html").read_text()
    assert "linear-probe test accuracy" in page
    assert "I(x; z)" not in page and "kl_per_dim" not in page
    assert "proline" not in _html_table(page, "loadings").__str__()


def test_sorted_items_groups_by_the_main_factor():
    from elbokit._factor_report import sorted_items

    loadings = np.array([[0.1, 0.6], [0.9, 0.0], [-0.2, -0.8], [0.5, 0.1], [0.3, 0.31]])
    assert sorted_items(loadings).tolist() == [1, 3, 2, 0, 4]


def test_resume_refuses_other_columns(questionnaire, complete_csv, tmp_path, capsys):
    pytest.importorskip("torch")
    path, frame = questionnaire
    complete = complete_csv
    out = tmp_path / "vae"
    base = ["fit", "vae", "--data", str(complete), "--latent", "1", "--likelihood",
            "gaussian", "--hidden", "8", "--out", str(out)]
    assert main(base + ["--columns", "A1,A2,A3", "--epochs", "1"]) == 0
    assert json.loads((out / "run.json").read_text())["columns"] == ["A1", "A2", "A3"]
    capsys.readouterr()
    err = _one_line_error(base + ["--columns", "A1,A2,B1", "--epochs", "2", "--resume"],
                          capsys)
    assert "--resume needs the columns" in err and "A1, A2, A3" in err
    assert main(base + ["--columns", "A1,A2,A3", "--epochs", "2", "--resume"]) == 0
    capsys.readouterr()
