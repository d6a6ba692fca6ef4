"""Per-symbol Mamba (selective state-space) forecasting library.

``import ml.state_space`` registers every custom Keras object (layers, losses, metrics),
so ``keras.models.load_model(path)`` reads a saved forecaster network after this one
import. The public names below are the library's API::

    from ml.state_space import MambaForecaster, RandomWalk, backtest, load_history
"""

import os

from ml.state_space._version import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines; user may override

from ml.state_space import allocator as _allocator  # noqa: F401  (mallopt, first of all)
from ml.state_space.data.calendar import add_trading_days
from ml.state_space.data.sources import DataUnavailableError, load_bundled, load_history
from ml.state_space.evaluation.backtest import BacktestConfig, backtest
from ml.state_space.evaluation.scoring import score_forecasts, summarize
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.models import losses as _losses  # noqa: F401  (Keras registration)
from ml.state_space.models.base import Forecaster
from ml.state_space.models.baselines import Drift, EmpiricalQuantiles, RandomWalk
from ml.state_space.models.card import ModelCard
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.garch import Garch
from ml.state_space.models.lstm import LSTMForecaster
from ml.state_space.models.mamba import layers as _layers  # noqa: F401  (Keras registration)
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.mamba.model import MambaConfig
from ml.state_space.models.neural import NeuralForecaster
from ml.state_space.models.pooled import PooledNeuralForecaster
from ml.state_space.registry import ModelRegistry
from ml.state_space.significance import diebold_mariano
from ml.state_space.training.universe_trainer import UNIVERSE_TRAINING

__all__ = [
    "UNIVERSE_TRAINING",
    "BacktestConfig",
    "DataUnavailableError",
    "Drift",
    "EmpiricalQuantiles",
    "Forecaster",
    "Garch",
    "LSTMForecaster",
    "MambaConfig",
    "MambaForecaster",
    "ModelCard",
    "ModelRegistry",
    "NeuralForecaster",
    "PooledNeuralForecaster",
    "RandomWalk",
    "TimeSeriesFeatureEngineer",
    "TrainingConfig",
    "__version__",
    "add_trading_days",
    "backtest",
    "diebold_mariano",
    "load_bundled",
    "load_history",
    "score_forecasts",
    "summarize",
]
