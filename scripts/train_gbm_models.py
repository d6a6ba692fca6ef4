"""Train the gated global LightGBM quantile model on many symbols at once.

One model learns from every symbol's history; each symbol gets its own registry version
(the shared trees, its gate weights against its drift-garch-fhs fallback, test metrics),
served by the API with MAMBA_API_MODELS_DIR=models/lgbm. On the walk-forward backtest of
the 22 bundled series it meets every per-series goal of docs/EVALUATION.md (round 5).

Examples:
    python scripts/train_gbm_models.py --symbols BUNDLED --offline
    python scripts/train_gbm_models.py --symbols AAPL,MSFT,JPM,XOM --models-dir models/lgbm
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ml.cli import global_training

DEFAULT_DIR = Path("models") / "lgbm"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    global_training.add_arguments(parser, "BUNDLED", DEFAULT_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ml.state_space.training.gbm_trainer import GBMTraining, train_global

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    training = GBMTraining(seed=args.seed)
    return global_training.run(
        args,
        lambda prices: train_global(prices, training),
        training.model().to_dict(),
        training.horizons,
    )


if __name__ == "__main__":
    sys.exit(main())
