"""Numbers as the report, the digests and the command line print them: 9, 1.2, <0.001, NA."""

from __future__ import annotations

import math
from typing import Any


def is_missing(x: Any) -> bool:
    """None, NaN, or not a number at all."""
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def fmt_num(x: Any, digits: int = 1) -> str:
    """9 → '9', 1.234 → '1.2', NaN → 'NA'."""
    if is_missing(x):
        return "NA"
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.{digits}f}"


def fmt_p(p: Any) -> str:
    """p-value: 'NA', '<0.001' or three decimals."""
    if is_missing(p):
        return "NA"
    p = float(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_score(s: Any) -> str:
    return "NA" if is_missing(s) else f"{float(s):.2f}"
