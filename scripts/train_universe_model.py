"""Train the universe network: one Mamba on every symbol's windows, served for any symbol.

One network learns from the windows of every symbol (OHLCV features through one global
normaliser, a fixed number of windows drawn per epoch: docs/EVALUATION.md, round 9).
Each fitted symbol gets its own registry version (the shared network, its gate against
its drift-garch-fhs fallback, test metrics on its held-out block); the network alone is
stored under shared/, and the service forecasts any other symbol with it from that
symbol's history, marked unseen. Serve it with MAMBA_API_MODELS_DIR=models/universe.

Examples:
    python scripts/train_universe_model.py --symbols SP500 --offline
    python scripts/train_universe_model.py --symbols SP500_FIT --offline --set epochs=10
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from ml.cli import global_training
from ml.cli.args import add_set_argument, apply_settings

DEFAULT_DIR = Path("models") / "universe"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    global_training.add_arguments(parser, "SP500", DEFAULT_DIR)
    add_set_argument(
        parser,
        "override a training setting (model.<field> for the network), value as JSON, as\n"
        "scripts/backtest.py --set takes it: --set epochs=10 --set windows_per_epoch=16384",
    )
    return parser.parse_args(argv)


def log_epoch(name: str, record: dict) -> None:
    """One line per epoch of a long fit."""
    logging.getLogger("universe").info(
        "%s epoch %d: loss %.4f, val_loss %.4f, learning rate %.2g, %.0f s",
        name,
        record["epoch"],
        record.get("loss", float("nan")),
        record.get("val_loss", float("nan")),
        record["learning_rate"],
        record["seconds"],
    )


def main(argv: list[str] | None = None) -> int:
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.training.universe_trainer import (
        UNIVERSE_TRAINING,
        check_universe_config,
        train_universe,
    )

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    settings = replace(UNIVERSE_TRAINING, seed=args.seed).to_dict()
    try:
        apply_settings({"": settings, "model": settings["model"]}, args.set)
        config = TrainingConfig.from_dict(settings)
        check_universe_config(config)
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    return global_training.run(
        args,
        lambda prices: train_universe(prices, config, log_epoch),
        config.to_dict(),
        config.model.horizons,
    )


if __name__ == "__main__":
    sys.exit(main())
