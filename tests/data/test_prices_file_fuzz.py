"""Generated price files, defects and all: each is read with every row it holds, or refused
with a ``PricesFileError`` naming the file; never another exception, never a row lost.

``PRICES_FUZZ_EXAMPLES`` sets the number of files (the suite's default is small; the count
in docs/DATA.md is a run of 2,000).
"""

from __future__ import annotations

import os

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml.state_space.data.prices_file import PricesFileError, read_prices_file

EXAMPLES = int(os.environ.get("PRICES_FUZZ_EXAMPLES", "150"))
DAYS = pd.bdate_range("2019-12-02", periods=40)

good_price = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False).map(lambda v: f"{v:.6g}")
bad_price = st.sampled_from(["0", "-1", "nan", "inf", "-inf", "n/a", "1e400", "", " ", "1,5"])
date_text = st.sampled_from(
    [
        "{d:%Y-%m-%d}",
        "{d:%Y-%m-%d} 16:00",
        "{d:%Y-%m-%d}T16:00:00-05:00",
        "{d:%Y-%m-%d}T23:30:00Z",
        "{d:%m/%d/%Y}",
        "{d:%d/%m/%Y}",
        "{d:%Y%m%d}",
        "{d:%d %b %Y}",
        "not a date",
        "",
    ]
)


@st.composite
def price_files(draw) -> tuple[str, int]:
    """A CSV text and the number of prices it holds (long or wide): mostly
    well-formed, each defect drawn now and then (one file in two or three has one)."""
    wide = draw(st.booleans())
    names = st.sampled_from([*("AAA", "BBB", "C.D", "E-F") * 4, "aaa", "../x"])
    symbols = draw(st.lists(names, min_size=1, max_size=3, unique=draw(st.integers(0, 4)) > 0))
    n = draw(st.integers(min_value=0, max_value=12))
    days = st.integers(0, len(DAYS) - 1)
    picks = sorted(draw(st.lists(days, min_size=n, max_size=n, unique=draw(st.booleans()))))
    if draw(st.integers(0, 5)) == 0:
        picks = list(reversed(picks))
    formats = draw(st.lists(date_text, min_size=1, max_size=2))
    dates = [draw(st.sampled_from(formats)).format(d=DAYS[i]) for i in picks]
    defects = draw(st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.2]))  # the share of bad values
    price = st.floats(0, 1).flatmap(lambda u: bad_price if u < defects else good_price)
    header_case = draw(st.sampled_from([str.lower, str.upper, str.title]))
    if wide:
        lines, cells = [",".join([header_case("date"), *symbols])], 0
        for d in dates:
            values = [draw(price) for _ in symbols]
            cells += sum(bool(v.strip()) for v in values)  # a blank cell is no price
            lines.append(",".join([d, *values]))
    else:
        columns = ["date", "symbol", "close", *draw(st.sampled_from([[], ["volume"], ["high"]]))]
        lines = [",".join(header_case(c) for c in columns)]
        for symbol in symbols:
            for d in dates:
                extra = [draw(price) for _ in columns[3:]]
                lines.append(",".join([d, symbol, draw(price), *extra]))
        cells = len(lines) - 1
    if lines[1:] and draw(st.integers(0, 3)) == 0:  # a blank line somewhere
        lines.insert(draw(st.integers(1, len(lines))), "")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + newline.join(lines) + newline, cells


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=price_files())
def test_a_generated_file_is_read_whole_or_refused_by_name(tmp_path_factory, generated) -> None:
    text, cells = generated
    path = tmp_path_factory.mktemp("fuzz") / "prices.csv"
    path.write_text(text, encoding="utf-8")
    try:
        frames = read_prices_file(path)
    except PricesFileError as error:
        assert str(path) in str(error)
        event("refused")
        return
    event("read")
    assert sum(len(frame) for frame in frames.values()) == cells  # none lost
    for frame in frames.values():
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
        assert (frame.index == frame.index.normalize()).all()
        assert (frame["close"] > 0).all()
