"""Choosing the columns of a table by name: ``columns=`` (keep these, in this order) or
``drop_columns=`` (keep all but these), for CSV files with a header and the built-in
tables. The CLI's ``--columns`` / ``--drop-columns`` and :func:`elbokit.data.load`
share these rules; a name that is not a column is a one-line
:class:`~elbokit.exceptions.DataError` that lists the columns there are.
"""

from __future__ import annotations

from collections.abc import Sequence

from .exceptions import DataError


def as_names(value, flag: str) -> list[str] | None:
    """A column list as given: None, a comma-separated string ("id,gender") or a
    sequence of names; returned as a list of stripped names (None for None)."""
    if value is None:
        return None
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence):
        names = [str(part).strip() for part in value]
    else:
        raise DataError(f"{flag} must be column names (a list, or a comma-separated "
                        f"string); got {type(value).__name__}")
    if not names or any(not name for name in names):
        raise DataError(f"{flag} must be non-empty column names separated by commas; "
                        f"got {value!r}")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"{flag} names {', '.join(map(repr, duplicated))} more than once")
    return names


def check_selection(columns, drop_columns) -> tuple[list[str] | None, list[str] | None]:
    """``(columns, drop_columns)`` as name lists; at most one of them may be given."""
    keep, drop = as_names(columns, "columns"), as_names(drop_columns, "drop_columns")
    if keep is not None and drop is not None:
        raise DataError("give columns (the ones to keep) or drop_columns (the ones to leave "
                        "out), not both")
    return keep, drop


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def selected_indices(names: Sequence[str] | None, columns, drop_columns, source: str
                     ) -> list[int] | None:
    """The indices (in the order kept) of the columns a selection keeps, or None for no
    selection. ``names``: the table's column names (None: a file without a header,
    where no name can be chosen)."""
    keep, drop = check_selection(columns, drop_columns)
    if keep is None and drop is None:
        return None
    if names is None:
        raise DataError(f"{source} has no column names, so columns cannot be chosen by name "
                        "(columns/drop_columns need a CSV file with a header row or a "
                        "built-in table)")
    names = [str(n) for n in names]
    asked = keep if keep is not None else drop
    missing = [n for n in asked if n not in names]
    if missing:
        raise DataError(f"{source} has no column {missing[0]!r}; its columns are "
                        f"{_listing(names)}")
    twice = [n for n in asked if names.count(n) > 1]
    if twice:
        raise DataError(f"{source} has more than one column named {twice[0]!r}; rename them "
                        "in the header to choose one")
    if keep is not None:
        return [names.index(n) for n in keep]
    indices = [j for j, n in enumerate(names) if n not in drop]
    if not indices:
        raise DataError(f"drop_columns leaves no column of {source}")
    return indices


def drop_hint(name: str) -> str:
    """How to leave out a column that cannot be fitted, for a one-line message."""
    return (f"leave it out with --drop-columns {name} (drop_columns=[{name!r}] in Python), "
            "or choose the columns to fit with --columns")
