import numpy as np
import pytest

from semistylegan.metrics import synthetic


@pytest.fixture(scope="session")
def split():
    """Train (10,000) and test (5,000) factor classes of the synthetic dSprites-sized grid."""
    return synthetic.fixed_split()


@pytest.fixture(scope="session")
def grid():
    return synthetic.SyntheticCodeGrid()


@pytest.fixture(scope="session")
def identity10():
    """dlib's test setting: 10 factors with 10 values each, codes = the factor values."""
    rs = np.random.RandomState(0)
    factors = rs.randint(10, size=(3000, 10))
    return factors.astype(np.float64), factors
