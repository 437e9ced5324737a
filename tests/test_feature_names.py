"""pandas DataFrames in, feature names out: feature_names_in_, get_feature_names_out,
set_output(transform="pandas"), alone and inside a scikit-learn Pipeline."""


import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from elbokit import PCA, PPCA, VBPCA, FactorAnalysis, LinearAutoencoder
from conftest import quiet as _quiet

ESTIMATORS = [PCA(3), PPCA(3), PPCA(3, solver="em", random_state=0), FactorAnalysis(3),
              LinearAutoencoder(3, random_state=0, max_iter=500), VBPCA(3, random_state=0)]


@pytest.fixture(scope="module")
def frame():
    wine = load_wine(as_frame=True)
    return wine.data


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e))
def test_dataframe_names_in_and_out(frame, estimator):
    model = _quiet(lambda: estimator.fit(frame))
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    prefix = type(estimator).__name__.lower()
    names = model.get_feature_names_out()
    assert list(names) == [f"{prefix}{i}" for i in range(model.transform(frame).shape[1])]
    out = _quiet(lambda: model.set_output(transform="pandas").transform(frame))
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(names)
    assert out.index.equals(frame.index)
    model.set_output(transform="default")
    with pytest.raises(ValueError, match="feature names"):  # renamed columns are caught
        model.transform(frame.rename(columns={frame.columns[0]: "renamed"}))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: repr(e))
def test_pipeline_set_output_and_names(frame, estimator):
    pipe = make_pipeline(StandardScaler(), estimator).set_output(transform="pandas")
    out = _quiet(lambda: pipe.fit_transform(frame))
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(pipe.get_feature_names_out())
    assert list(pipe[:-1].get_feature_names_out()) == list(frame.columns)


def test_warnings_name_the_columns_of_a_dataframe():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).data
    with pytest.warns(UserWarning, match=r"Heywood cases \(indices 0, 2 \('sepal length \(cm\)', "
                                         r"'petal length \(cm\)'\)"):
        FactorAnalysis(2).fit(iris)
    iris["constant"] = 1.0
    with pytest.warns(UserWarning, match=r"constant \(indices 4 \('constant'\)\)"):
        PPCA(2).fit(iris)
