"""pandas / pyarrow conversions, imported only when asked for (neither is a dependency)."""

from __future__ import annotations

import importlib
from typing import Any, List, Sequence


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module} is not installed: pip install {module} (or dbforge[{extra}])"
        ) from e


def to_pandas(columns: List[str], rows: Sequence[Sequence[Any]]) -> Any:
    """A pandas.DataFrame with these columns."""
    pd = _require("pandas", "pandas")
    return pd.DataFrame.from_records(list(rows), columns=columns)


def to_arrow(columns: List[str], rows: Sequence[Sequence[Any]]) -> Any:
    """A pyarrow.Table with these columns (types inferred per column)."""
    pa = _require("pyarrow", "arrow")
    arrays = [pa.array([row[i] for row in rows]) for i in range(len(columns))]
    return pa.Table.from_arrays(arrays, names=columns)
