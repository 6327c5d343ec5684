"""Log records that cannot carry patient data out of a database error.

A database's own error messages quote the values of the row at fault: PostgreSQL's
"DETAIL: Failing row contains (…, Müller^Hans, …)" or "Key (patient_id)=(…)". SQLAlchemy
is told to hide statement parameters (``db/engine.py``); this module removes what the
server itself put in the message, from exception tracebacks and from logged arguments,
keeping what a PACS administrator needs: the SQLSTATE, the constraint, table and column
names, and the statement without its values.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_previous_factory = logging.getLogRecordFactory()
_installed = False


def _database_error(exc: BaseException | None) -> BaseException | None:
    """The database driver's exception in ``exc``'s chain, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError) or getattr(exc, "sqlstate", None) is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def describe_database_error(exc: BaseException) -> str:
    """What went wrong, without a single value of the data involved."""
    statement = exc.statement if isinstance(exc, DBAPIError) else None
    driver = exc.orig if isinstance(exc, DBAPIError) else exc
    parts = [type(driver).__name__]
    sqlstate = getattr(driver, "sqlstate", None)
    diag = getattr(driver, "diag", None)
    if sqlstate is None and driver is not None:
        parts.append(str(driver))  # SQLite names the constraint, never a value
    else:
        parts.append(f"sqlstate={sqlstate}")
        for field in ("schema_name", "table_name", "column_name", "constraint_name"):
            value = getattr(diag, field, None)
            if value:
                parts.append(f"{field.removesuffix('_name')}={value}")
    if statement:
        parts.append(f"[SQL: {' '.join(statement.split())}]")
    return " ".join(parts)


def database_away(exc: BaseException) -> bool:
    """The database could not be reached or was busy (restart, network, lock): worth a
    retry and one line in the log, not a traceback."""
    return isinstance(exc, (OperationalError, InterfaceError))


def _safe_arg(arg: Any) -> Any:
    if isinstance(arg, BaseException) and _database_error(arg) is arg:
        return describe_database_error(arg)
    return arg


def _safe_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)
    if isinstance(record.args, tuple) and any(
        isinstance(arg, BaseException) for arg in record.args
    ):
        record.args = tuple(_safe_arg(arg) for arg in record.args)
    if record.exc_info and record.exc_info[1] is not None:
        found = _database_error(record.exc_info[1])
        if found is not None:
            _kind, value, tb = record.exc_info
            record.exc_text = (
                "Traceback (most recent call last):\n"
                + "".join(traceback.format_tb(tb))
                + f"{type(value).__module__}.{type(value).__qualname__}: "
                + describe_database_error(found)
            )
    return record


def install() -> None:
    """Make every log record of the process safe (idempotent)."""
    global _installed
    if not _installed:
        logging.setLogRecordFactory(_safe_record)
        _installed = True
