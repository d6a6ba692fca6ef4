"""Score a backtest and write what it found: the forecast table, JSON summary, Markdown report.

Layout under the output directory::

    forecasts.parquet   every forecast row (model, symbol, fold, origin_date, horizon, q..., actual)
    summary.json        run facts, per model x horizon summary, per model x symbol x horizon scores
    report.md           the summary tables, readable on their own

``load_backtest_scores`` reads ``summary.json`` back for the review and the service.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml.state_space.atomic import atomic_write, atomic_write_json
from ml.state_space.data.bundled import sectors
from ml.state_space.evaluation.backtest import BacktestConfig, BacktestResult
from ml.state_space.evaluation.cross_section import cross_section_table, sector_table
from ml.state_space.evaluation.scoring import score_forecasts, summarize, summarize_by_fold

logger = logging.getLogger(__name__)

BASELINE = "rw"
SUMMARY_FILE, FORECASTS_FILE, REPORT_FILE = "summary.json", "forecasts.parquet", "report.md"


@dataclass
class BacktestReport:
    """The scored backtest: per symbol, per year, and the per model x horizon summary."""

    scores: pd.DataFrame
    fold_scores: pd.DataFrame
    fold_summary: pd.DataFrame
    summary: pd.DataFrame
    cross_section: pd.DataFrame  # per model x horizon: IC, quintile spread (cross_section)
    by_sector: pd.DataFrame  # per model x horizon x GICS sector of the bundled universe


def score_backtest(forecasts: pd.DataFrame, baseline: str = BASELINE) -> BacktestReport:
    """Every model scored against ``baseline`` (the random walk) on the same windows."""
    scores = score_forecasts(forecasts, baseline=baseline)
    fold_scores = score_forecasts(
        forecasts, baseline=baseline, by=("model", "symbol", "horizon", "fold")
    )
    return BacktestReport(
        scores=scores,
        fold_scores=fold_scores,
        fold_summary=summarize_by_fold(fold_scores),
        summary=summarize(forecasts, scores, baseline=baseline),
        cross_section=cross_section_table(forecasts),
        by_sector=sector_table(forecasts, sectors()),
    )


def write_backtest(
    out: Path,
    result: BacktestResult,
    report: BacktestReport,
    config: BacktestConfig,
    facts: dict[str, Any],
) -> dict[str, Path]:
    """Write the forecasts, summary and report atomically; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "forecasts": atomic_write(
            out / FORECASTS_FILE, lambda tmp: result.forecasts.to_parquet(tmp, index=False)
        ),
        "summary": atomic_write_json(
            out / SUMMARY_FILE,
            {
                **facts,
                "seconds": result.seconds,
                **config.to_dict(),
                "tasks": len(result.outcomes) + result.resumed,
                "resumed_tasks": result.resumed,
                "failures": [vars(f) for f in result.failures],
                "skipped": result.skipped,
                "summary": _records(report.summary),
                "by_year": _records(report.fold_summary),
                "cross_section": _records(report.cross_section),
                "by_sector": _records(report.by_sector),
                "scores": _records(report.scores),
            },
        ),
    }
    text = render_markdown(report, result, config, facts)
    paths["report"] = atomic_write(out / REPORT_FILE, lambda tmp: tmp.write_text(text))
    return paths


def render_markdown(
    report: BacktestReport, result: BacktestResult, config: BacktestConfig, facts: dict[str, Any]
) -> str:
    """The report: what ran, then one table per horizon, then failures."""
    lines = [
        "# Walk-forward backtest",
        "",
        f"- command: `{facts.get('command', '')}`",
        f"- symbols: {facts.get('symbols', '')}",
        *([f"- global models fitted on: {facts['fit_symbols']}"] if "fit_symbols" in facts else []),
        f"- test years: {config.years[0]}-{config.years[-1]}; models: {', '.join(config.models)}; "
        f"seeds: {', '.join(map(str, config.seeds))}",
        f"- wall time: {result.seconds:.0f} s on {facts.get('cpu', '?')}; "
        f"{len(result.outcomes)} tasks, {len(result.failures)} failed",
        "",
        "Skill = 1 - loss(model) / loss(baseline) on the same windows: MAE of the median vs "
        "the random walk (no change), pinball loss vs the random walk's trailing-volatility "
        "Gaussian band. Significance: Diebold-Mariano (HLN, HAC lag h-1), 5%. Definitions: "
        "docs/EVALUATION.md.",
        "",
    ]
    for horizon, table in report.summary.groupby("horizon", sort=True):
        lines += [f"## h = {horizon} trading days", "", summary_table(table), ""]
    lines += [
        "## Calibration per quantile",
        "",
        "Median over symbols of the share of outcomes at or below each quantile (a "
        "calibrated q0.1 has 0.10 below it); calibrated: every quantile within 0.05.",
        "",
        calibration_table(report.summary),
        "",
    ]
    if not report.cross_section.empty:
        lines += [
            "## Cross-section",
            "",
            "Per origin date across symbols: the Spearman IC of q0.5 with the outcome (mean "
            "over dates, Newey-West t, h-1 lags) and the mean realised h-day return of the "
            "top fifth by q0.5 minus the bottom fifth (dates with >= 10 symbols). A model "
            "with one median for all (rw) ranks nothing: -.",
            "",
            markdown_table(report.cross_section, CROSS_SECTION_COLUMNS),
            "",
        ]
    if not report.by_sector.empty:
        lines += [
            "## IC within each sector",
            "",
            markdown_table(report.by_sector, SECTOR_COLUMNS),
            "",
        ]
    if result.failures:
        lines += ["## Failed tasks", ""]
        lines += [f"- `{f.key}`: {f.error}" for f in result.failures]
    if result.skipped:
        lines += ["", "## Skipped (symbol, year)", ""]
        lines += [f"- {reason}" for reason in result.skipped]
    return "\n".join(lines) + "\n"


SUMMARY_COLUMNS = {
    "model": "model",
    "symbols": "symbols",
    "share_mae_skill_positive": "MAE skill > 0",
    "median_mae_skill": "median MAE skill",
    "significantly_better": "DM better",
    "significantly_worse": "DM worse",
    "share_pinball_skill_positive": "pinball skill > 0",
    "median_pinball_skill": "median pinball skill",
    "pinball_significantly_better": "pinball DM better",
    "pinball_significantly_worse": "pinball DM worse",
    "median_band_coverage": "10-90 coverage",
    "pooled_ic": "pooled IC",
    "pooled_ic_se": "IC s.e.",
    "share_beats_baseline": "beats baseline",
    "share_gate_passed": "gate passed",
}


CROSS_SECTION_COLUMNS = {
    "model": "model",
    "horizon": "h",
    "dates": "dates",
    "mean_ic": "mean IC",
    "ic_t": "IC t",
    "quintile_spread": "Q5 - Q1 return",
    "quintile_spread_t": "spread t",
}
SECTOR_COLUMNS = {
    "model": "model",
    "horizon": "h",
    "sector": "sector",
    "symbols": "symbols",
    "dates": "dates",
    "mean_ic": "mean IC",
    "ic_t": "IC t",
}


def summary_table(summary: pd.DataFrame) -> str:
    """A Markdown table of the main summary columns (shares as %, skills to 3 decimals)."""
    return markdown_table(summary, SUMMARY_COLUMNS)


def markdown_table(frame: pd.DataFrame, columns: dict[str, str]) -> str:
    """``frame``'s ``columns`` (name -> header) as a Markdown table, cells by format_cell."""
    header = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "---|" * len(columns)
    rows = [
        "| " + " | ".join(format_cell(name, row[name]) for name in columns) + " |"
        for _, row in frame.iterrows()
    ]
    return "\n".join([header, rule, *rows])


def calibration_table(summary: pd.DataFrame) -> str:
    """A Markdown table per model and horizon: each quantile's median coverage."""
    columns = sorted(
        (c for c in summary.columns if c.startswith("median_coverage_q")),
        key=lambda c: float(c.removeprefix("median_coverage_q")),
    )
    levels = [c.removeprefix("median_coverage_") for c in columns]
    header = "| model | h | " + " | ".join(f"below {level}" for level in levels)
    rows = [
        f"| {row['model']} | {row['horizon']} | "
        + " | ".join(f"{row[c]:.3f}" for c in columns)
        + f" | {100 * row['share_calibrated']:.0f}% |"
        for _, row in summary.sort_values(["model", "horizon"]).iterrows()
    ]
    rule = "|" + "---|" * (len(columns) + 3)
    return "\n".join([header + " | calibrated |", rule, *rows])


def format_cell(name: str, value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if name.startswith("share_"):
        return f"{100 * value:.0f}%"
    if name.endswith("_t"):
        return f"{value:+.2f}"
    if name == "quintile_spread":
        return f"{value:+.4f}"
    if isinstance(value, float):
        return f"{value:+.3f}" if "skill" in name or "ic" in name else f"{value:.3f}"
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


PUBLISHED_FIGURES = (
    "n",
    "mae_skill",
    "dm_mae_pvalue",
    "pinball_skill",
    "dm_pinball_pvalue",
    "band_coverage",
    "significantly_better",
    "significantly_worse",
    "beats_baseline",
)


def published_figures(
    scores: pd.DataFrame, model: str, config: BacktestConfig, facts: dict[str, Any]
) -> dict[str, Any]:
    """What the service and the review show for ``model``: per symbol and horizon
    (``"h<horizon>"``), the pooled walk-forward figures against the random walk; with
    ``facts["fit_symbols"]``, per horizon, those of the symbols the global models were not
    fitted on (``"unseen"``: what a forecast for a symbol never fitted can expect)."""
    rows = scores[scores["model"] == model]
    symbols: dict[str, dict[str, Any]] = {}
    for record in _records(rows[["symbol", "horizon", *PUBLISHED_FIGURES]]):
        symbol, horizon = record.pop("symbol"), record.pop("horizon")
        symbols.setdefault(symbol, {})[f"h{horizon}"] = record
    fitted = facts.get("fit_symbols")
    unseen = rows[~rows["symbol"].isin(fitted.split(","))] if fitted else rows.iloc[:0]
    return {
        "model": model,
        "baseline": BASELINE,
        "years": [config.years[0], config.years[-1]],
        "seeds": list(config.seeds),
        "warm_start": config.warm_start,
        "training": config.settings(model),  # the served model's card must match it
        "command": facts.get("command"),
        "symbols": symbols,
        **({"unseen": unseen_figures(unseen)} if len(unseen) else {}),
    }


def unseen_figures(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per horizon, a summary of per-symbol figures ``rows`` (held-out symbols): medians of
    the skills and the coverage, the windows scored, and whether most symbols beat the
    baseline; no p-value (one would need the pooled windows)."""
    summary = {}
    for horizon, group in rows.groupby("horizon"):
        summary[f"h{horizon}"] = {
            "symbols": len(group),
            "n": int(group["n"].sum()),
            "mae_skill": float(group["mae_skill"].median()),
            "dm_mae_pvalue": None,
            "pinball_skill": float(group["pinball_skill"].median()),
            "dm_pinball_pvalue": None,
            "band_coverage": float(group["band_coverage"].median()),
            "significantly_better": int(group["significantly_better"].sum()),
            "significantly_worse": int(group["significantly_worse"].sum()),
            "beats_baseline": bool(group["beats_baseline"].mean() > 0.5),
        }
    return summary


def load_backtest_scores(path: str | Path) -> dict[str, Any]:
    """``summary.json`` of a backtest directory (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8"))
