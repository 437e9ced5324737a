"""scikit-learn's own API checks over every classical estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder


def _estimators():
    estimators = [PCA(), PPCA(), PPCA(solver="em", random_state=0), FactorAnalysis(),
                  LinearAutoencoder(random_state=0),
                  # standardize=True: fitted on standardized data, every method in X's units
                  PCA(standardize=True), PPCA(solver="em", random_state=0, standardize=True),
                  FactorAnalysis(standardize=True)]
    try:
        from elbokit.vi import VBPCA
    except ImportError:
        pass
    else:
        estimators.append(VBPCA())
    return estimators


# No check is skipped: every estimator passes scikit-learn's full list.
@parametrize_with_checks(_estimators())
def test_sklearn_compatible(estimator, check):
    check(estimator)
