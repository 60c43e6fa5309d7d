"""Persistent generation history (SQLite in the data directory).

``st.session_state`` dies with a browser refresh, so every generation is written here and
survives refreshes and restarts. SQLite (standard library, WAL mode) is enough: one row per
generation, one short-lived connection per call so the store is safe to share across
Streamlit's session threads.

Re-run is exact: the input image itself is stored as PNG when it is at most
:data:`MAX_STORED_IMAGE_BYTES` once encoded; larger images keep only a thumbnail and their
digest, and re-running them asks for the image again.

Writes never follow links: the database and SQLite's side files (``-wal``, ``-shm``,
``-journal``) must be regular files or absent, checked by
:func:`dashboard.runs.files.write_target` (the writer behind saved results too) before every
connection — a ``history.sqlite`` symlinked elsewhere is refused, not written through. SQLite's
transactions (WAL) are what make each write atomic.

Public mode (a Space): every row carries the visitor token of the browser that made it, and a
store :meth:`HistoryStore.scoped` to a visitor reads, searches, exports and deletes only that
visitor's rows; local use keeps one shared, unscoped history.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dashboard.images import image_digest, to_png_bytes
from dashboard.runs.files import RunFileError, write_target

MAX_STORED_IMAGE_BYTES = 2 * 2**20
THUMBNAIL_SIDE = 128

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    run TEXT,
    checkpoint TEXT NOT NULL,
    prompt TEXT NOT NULL,
    prefill TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL,
    image_name TEXT,
    image_digest TEXT,
    example_id TEXT,
    thumbnail BLOB,
    image BLOB,
    output TEXT NOT NULL,
    timings TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'single',
    visitor TEXT
);
CREATE INDEX IF NOT EXISTS generations_created ON generations(created_at);
CREATE INDEX IF NOT EXISTS generations_checkpoint ON generations(checkpoint);
"""
_VISITOR_INDEX = "CREATE INDEX IF NOT EXISTS generations_visitor ON generations(visitor, created_at)"

SIDE_FILES = ("-wal", "-shm", "-journal")
"""What SQLite writes next to the database; each is checked like the database itself."""

_COLUMNS = ("id", "created_at", "run", "checkpoint", "prompt", "prefill", "settings", "image_name", "image_digest",
            "example_id", "thumbnail", "image", "output", "timings", "mode", "visitor")


class HistoryError(RuntimeError):
    """The history database cannot be opened or written (message names the file)."""


@dataclass
class HistoryRecord:
    """One generation as stored; ``settings``/``timings`` are plain dicts (JSON in the database)."""

    checkpoint: str
    prompt: str
    output: str
    settings: dict[str, Any]
    timings: dict[str, Any]
    run: str | None = None
    prefill: str = ""
    image_name: str | None = None
    image_digest: str | None = None
    example_id: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    image: bytes | None = field(default=None, repr=False)
    mode: str = "single"
    created_at: float = field(default_factory=time.time)
    id: int | None = None
    visitor: str | None = field(default=None, repr=False)
    """Public mode: the token of the browser that made it (never shown or exported)."""
    image_stored: bool = False
    """True when the full image is in the database (``image`` itself is loaded only on request)."""

    @classmethod
    def from_generation(cls, *, checkpoint: str | Path, prompt: str, output: str, settings: dict[str, Any],
                        timings: dict[str, Any], image: Image.Image | None = None, image_name: str | None = None,
                        run: str | Path | None = None, prefill: str = "", example_id: str | None = None,
                        mode: str = "single") -> HistoryRecord:
        """Build a record, encoding the image (if small enough) and a thumbnail."""
        full = thumb = digest = None
        if image is not None:
            digest = image_digest(image)
            thumb = to_png_bytes(image, max_side=THUMBNAIL_SIDE)
            encoded = to_png_bytes(image)
            full = encoded if len(encoded) <= MAX_STORED_IMAGE_BYTES else None
        return cls(checkpoint=str(checkpoint), prompt=prompt, output=output, settings=dict(settings),
                   timings=dict(timings), run=None if run is None else str(run), prefill=prefill,
                   image_name=image_name, image_digest=digest, example_id=example_id, thumbnail=thumb, image=full,
                   mode=mode, image_stored=full is not None)

    def export_dict(self) -> dict[str, Any]:
        """JSON/CSV-friendly view (no binary blobs)."""
        data = asdict(self)
        data.pop("thumbnail")
        data.pop("image")
        data.pop("visitor")
        data["created_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at))
        return data


class HistoryStore:
    """SQLite-backed history; every method opens its own connection (thread-safe by construction)."""

    def __init__(self, path: str | Path, visitor: str | None = None, _create: bool = True) -> None:
        self.path = Path(path)
        self.visitor = visitor
        """Set: every read, search, export and delete is limited to this visitor's rows."""
        if not _create:
            return
        try:
            self._check_target()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(generations)")}
                if "visitor" not in columns:  # a database from before public mode
                    conn.execute("ALTER TABLE generations ADD COLUMN visitor TEXT")
                conn.execute(_VISITOR_INDEX)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open history database {self.path}: {exc}") from exc

    def scoped(self, visitor: str | None) -> HistoryStore:
        """The same database seen by one visitor (``None``: everything, as in local use)."""
        return HistoryStore(self.path, visitor=visitor, _create=False)

    def _scope(self, clauses: list[str], params: list[Any]) -> str:
        """``WHERE`` text for ``clauses`` plus this store's visitor limit (appends to ``params``)."""
        if self.visitor is not None:
            clauses = [*clauses, "visitor = ?"]
            params.append(self.visitor)
        return f"WHERE {' AND '.join(clauses)}" if clauses else ""

    def purge_older_than(self, seconds: float) -> int:
        """Delete rows (of every visitor) older than ``seconds``: the public-mode retention."""
        with self._connect() as conn:
            return conn.execute("DELETE FROM generations WHERE created_at < ?", (time.time() - seconds,)).rowcount

    def _check_target(self) -> None:
        """Refuse a database (or side file) that is a symlink or a special file: never written through."""
        try:
            for suffix in ("", *SIDE_FILES):
                write_target(self.path.with_name(self.path.name + suffix), self.path.parent)
        except RunFileError as exc:
            raise HistoryError(f"history database {self.path} refused: {exc}") from exc
        except OSError as exc:  # e.g. a file where its folder should be
            raise HistoryError(f"cannot open history database {self.path}: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._check_target()
        try:
            with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
                conn.row_factory = sqlite3.Row
                yield conn
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"history database {self.path} failed: {exc}") from exc

    def add(self, record: HistoryRecord) -> int:
        if self.visitor is not None:
            record.visitor = self.visitor
        values = {k: getattr(record, k) for k in _COLUMNS if k != "id"}
        values["settings"] = json.dumps(record.settings, sort_keys=True)
        values["timings"] = json.dumps(record.timings, sort_keys=True)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._connect() as conn:
            cursor = conn.execute(f"INSERT INTO generations ({names}) VALUES ({marks})", tuple(values.values()))
            record.id = int(cursor.lastrowid or 0)  # always set after an INSERT
        return record.id

    def add_many(self, records: Sequence[HistoryRecord]) -> list[int]:
        return [self.add(r) for r in records]

    @staticmethod
    def _record(row: sqlite3.Row) -> HistoryRecord:
        data = dict(row)
        data["settings"] = json.loads(data["settings"] or "{}")
        data["timings"] = json.loads(data["timings"] or "{}")
        data["image_stored"] = bool(data.get("image_stored"))
        return HistoryRecord(**data)

    def list(self, *, run: str | None = None, checkpoint: str | None = None, text: str | None = None,
             mode: str | None = None, limit: int = 200, offset: int = 0,
             with_images: bool = False) -> list[HistoryRecord]:
        """Newest first; ``text`` matches prompt or output (case-insensitive substring)."""
        clauses, params = [], []
        if run:
            clauses.append("run = ?")
            params.append(str(run))
        if checkpoint:
            clauses.append("checkpoint = ?")
            params.append(str(checkpoint))
        if mode:
            clauses.append("mode = ?")
            params.append(mode)
        if text:
            clauses.append("(instr(lower(prompt), ?) > 0 OR instr(lower(output), ?) > 0)")
            params += [text.lower(), text.lower()]
        where = self._scope(clauses, params)
        columns = ", ".join(c if with_images or c != "image" else "NULL AS image" for c in _COLUMNS)
        columns += ", image IS NOT NULL AS image_stored"
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {columns} FROM generations {where} ORDER BY created_at DESC, id DESC "
                                "LIMIT ? OFFSET ?", (*params, int(limit), int(offset))).fetchall()
        return [self._record(r) for r in rows]

    def get(self, record_id: int) -> HistoryRecord | None:
        params: list[Any] = [int(record_id)]
        where = self._scope(["id = ?"], params)
        with self._connect() as conn:
            row = conn.execute(f"SELECT {', '.join(_COLUMNS)}, image IS NOT NULL AS image_stored FROM generations "
                               f"{where}", tuple(params)).fetchone()
        return None if row is None else self._record(row)

    def delete(self, record_ids: int | Sequence[int]) -> int:
        ids = [record_ids] if isinstance(record_ids, int) else list(record_ids)
        if not ids:
            return 0
        params: list[Any] = [int(i) for i in ids]
        where = self._scope([f"id IN ({', '.join('?' for _ in ids)})"], params)
        with self._connect() as conn:
            return conn.execute(f"DELETE FROM generations {where}", tuple(params)).rowcount

    def clear(self) -> int:
        params: list[Any] = []
        with self._connect() as conn:
            return conn.execute(f"DELETE FROM generations {self._scope([], params)}", tuple(params)).rowcount

    def count(self) -> int:
        params: list[Any] = []
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM generations {self._scope([], params)}",
                                    tuple(params)).fetchone()[0])

    def distinct(self, column: str) -> builtins.list[str]:
        """Distinct non-null values of ``run`` or ``checkpoint`` (for filter widgets)."""
        if column not in ("run", "checkpoint"):
            raise ValueError(f"cannot list distinct values of {column!r}")
        params: list[Any] = []
        where = self._scope([f"{column} IS NOT NULL"], params)
        with self._connect() as conn:
            rows = conn.execute(f"SELECT DISTINCT {column} FROM generations {where} ORDER BY {column}",
                                tuple(params)).fetchall()
        return [r[0] for r in rows]

    def export_rows(self, records: Sequence[HistoryRecord] | None = None,
                    **filters: Any) -> builtins.list[dict[str, Any]]:  # builtins: `list` is a method here
        """Blob-free dicts (settings/timings flattened into ``settings.*``/``timings.*`` columns too)."""
        chosen = records if records is not None else self.list(limit=10**9, **filters)
        rows = []
        for record in chosen:
            data = record.export_dict()
            for prefix in ("settings", "timings"):
                for k, v in (data.get(prefix) or {}).items():
                    data[f"{prefix}.{k}"] = v
            rows.append(data)
        return rows
