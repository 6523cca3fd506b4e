"""Copy one state store into another (``leaksentry db migrate-from-sqlite``): every
table, in one transaction of the target, so a failed copy leaves it empty and can simply
run again. The target must be empty: a copy never merges two stores' ids.

Both stores are at the same schema version first (the source migrates on open, the
target through its upgrade), so their columns match; a column only one side has (a
store written by another version) is left out and named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from leaksentry.errors import StoreError
from leaksentry.store.db import Store
from leaksentry.store.engine import quoted

#: parents before children (foreign keys); any other table follows in name order
ORDER = ("documents", "hits", "seen_items", "source_state", "es_spool", "alerts",
         "deliveries", "alert_health", "source_runs", "source_health", "evidence",
         "evidence_audit")
#: the store's own bookkeeping, made by each store itself
SKIP = {"schema_version", "sqlite_sequence"}
BATCH = 2000

#: progress(table, rows copied so far, rows in the table)
Progress = Callable[[str, int, int], None]


@dataclass
class CopyReport:
    counts: dict[str, int] = field(default_factory=dict)
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)


def tables_in_order(src: Store, dst: Store) -> list[str]:
    both = (src.tables() & dst.tables()) - SKIP
    return [t for t in ORDER if t in both] + sorted(both - set(ORDER))


def non_empty(store: Store, tables: list[str]) -> dict[str, int]:
    out = {}
    for t in tables:
        n = int(store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        if n:
            out[t] = n
    return out


def copy_store(src: Store, dst: Store, progress: Progress | None = None) -> CopyReport:
    """Copy every row of ``src`` into the empty ``dst``; rows counted on both sides."""
    if src.schema_versions() != dst.schema_versions():
        raise StoreError(f"{dst.where}: schema differs from {src.where}'s; run"
                         " `leaksentry db upgrade` with this leaksentry first")
    tables = tables_in_order(src, dst)
    full = non_empty(dst, tables)
    if full:
        what = ", ".join(f"{t} {n}" for t, n in full.items())
        raise StoreError(f"{dst.where} already holds rows ({what}); migrate-from-sqlite"
                         " copies into an empty store only (drop and re-create the database"
                         " to copy again)")
    report = CopyReport()
    with dst.transaction() as tx:
        for table in tables:
            src_cols = src.conn.columns(table)
            dst_cols = set(dst.conn.columns(table))
            cols = [c for c in src_cols if c in dst_cols]
            dropped = [c for c in src_cols if c not in dst_cols]
            if dropped:
                report.dropped_columns[table] = dropped
            total = int(src.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            done = 0
            if progress is not None:
                progress(table, 0, total)
            cur = src.conn.execute(f"SELECT {', '.join(quoted(c) for c in cols)}"
                                   f" FROM {quoted(table)}")
            while True:
                rows = cur.fetchmany(BATCH)
                if not rows:
                    break
                tx.insert_rows(table, cols, [tuple(r) for r in rows])
                done += len(rows)
                if progress is not None:
                    progress(table, done, total)
            tx.reset_ids(table)
            copied = int(tx.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            if copied != total:
                raise StoreError(f"{dst.where}: {table}: {copied} rows copied of {total}")
            report.counts[table] = copied
    return report
