"""Generation history in SQLite: persists across store instances, filters, deletes, exports."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from dashboard.history import HistoryError, HistoryRecord, HistoryStore
from dashboard.images import image_digest, load_image


def record(checkpoint="run/checkpoint-1", prompt="what colour ?", output="red", image=None, **kwargs):
    return HistoryRecord.from_generation(
        checkpoint=checkpoint, prompt=prompt, output=output, settings={"max_new_tokens": 8, "seed": 0},
        timings={"latency_s": 0.1, "tokens_per_s": 20.0}, image=image, image_name="x.png", run="run", **kwargs)


def test_add_get_roundtrip_with_exact_image(tmp_path):
    image = Image.new("RGB", (64, 48), (1, 2, 3))
    store = HistoryStore(tmp_path / "h.sqlite")
    rid = store.add(record(image=image, prefill="the", example_id="00012"))
    got = store.get(rid)
    assert got.prompt == "what colour ?" and got.output == "red" and got.prefill == "the"
    assert got.settings == {"max_new_tokens": 8, "seed": 0}
    assert got.timings["tokens_per_s"] == 20.0
    assert got.example_id == "00012" and got.run == "run"
    assert image_digest(load_image(got.image)) == image_digest(image) == got.image_digest
    assert max(Image.open(io.BytesIO(got.thumbnail)).size) <= 128


def test_survives_a_new_store_instance(tmp_path):
    path = tmp_path / "data" / "history.sqlite"
    HistoryStore(path).add(record(output="blue"))
    again = HistoryStore(path)  # e.g. after an app restart
    assert [r.output for r in again.list()] == ["blue"]


def test_filters_order_and_delete(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    ids = [store.add(record(checkpoint=f"run/checkpoint-{i % 2}", output=f"answer {i}", mode="batch" if i else
                            "single")) for i in range(5)]
    assert [r.id for r in store.list()] == ids[::-1]  # newest first
    assert {r.checkpoint for r in store.list(checkpoint="run/checkpoint-1")} == {"run/checkpoint-1"}
    assert [r.output for r in store.list(text="ANSWER 3")] == ["answer 3"]
    assert len(store.list(mode="batch")) == 4
    assert store.list()[0].image is None  # blobs only on request
    assert store.delete(ids[0]) == 1
    assert store.get(ids[0]) is None
    assert store.delete(ids[1:3]) == 2
    assert store.count() == 2
    assert store.distinct("checkpoint") == ["run/checkpoint-0", "run/checkpoint-1"]


def test_export_rows_are_blob_free_and_json_serialisable(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    store.add(record(image=Image.new("RGB", (8, 8))))
    rows = store.export_rows()
    assert len(rows) == 1
    assert "image" not in rows[0] and "thumbnail" not in rows[0]
    assert rows[0]["image_stored"] is True
    assert rows[0]["timings.tokens_per_s"] == 20.0
    json.dumps(rows)


def test_large_images_keep_only_a_thumbnail(tmp_path, monkeypatch):
    import dashboard.history as history

    monkeypatch.setattr(history, "MAX_STORED_IMAGE_BYTES", 1000)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    rec = record(image=noisy)
    assert rec.image is None and rec.thumbnail is not None and rec.image_digest == image_digest(noisy)


def test_concurrent_writers(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite")
    threads = [threading.Thread(target=lambda: [store.add(record()) for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.count() == 40


def test_unusable_location_gives_history_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HistoryError, match="cannot open history database"):
        HistoryStore(blocker / "history.sqlite")
