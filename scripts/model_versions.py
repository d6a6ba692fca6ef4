"""List a models directory's versions and roll a symbol back.

Every training run writes a new immutable version per symbol and switches the symbol's
pointer to it; the last ``--keep-versions`` (training CLI, default 3) are kept. A running
service serves the switched version from its next request on.

Examples:
    python scripts/model_versions.py list                  # every symbol: current and kept
    python scripts/model_versions.py list AAPL MSFT
    python scripts/model_versions.py rollback AAPL         # the version before the current
    python scripts/model_versions.py rollback AAPL --to 20261123T031502Z-1a2b3c4d
"""

from __future__ import annotations

import argparse
import sys

from ml.state_space.data.symbols import InvalidSymbolError, validate_symbol
from ml.state_space.registry import (
    DEFAULT_ROOT,
    CorruptArtifactError,
    ModelNotFoundError,
    ModelRegistry,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="current and kept versions per symbol")
    listing.add_argument("symbols", nargs="*", help="default: every symbol with a model")
    rollback = commands.add_parser("rollback", help="make an older version current")
    rollback.add_argument("symbol")
    rollback.add_argument("--to", dest="version", help="default: the version before the current")
    return parser.parse_args(argv)


def list_versions(registry: ModelRegistry, symbols: list[str]) -> None:
    for symbol in symbols or registry.symbols():
        current = registry.current_version(symbol)
        kept = ", ".join(f"{v} (current)" if v == current else v for v in registry.versions(symbol))
        print(f"{symbol}: {kept}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    registry = ModelRegistry(args.models_dir)
    try:
        if args.command == "list":
            list_versions(registry, args.symbols)
        else:
            version = registry.rollback(args.symbol, args.version)
            print(f"{validate_symbol(args.symbol)}: version {version} is current")
    except (ModelNotFoundError, CorruptArtifactError, InvalidSymbolError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
