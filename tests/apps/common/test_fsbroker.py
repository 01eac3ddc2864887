"""The embedded broker never shows a consumer a message file before it is whole
(kombu's own transport creates the file in the queue folder, then writes it)."""
from __future__ import annotations

import os

from kombu import Connection


def _conn(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    return folder, Connection("filesystem://", transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder),
        "processed_folder": str(tmp_path / "processed"), "store_processed": False})


def test_filesystem_urls_use_the_atomic_transport():
    import config.celery  # noqa: F401 - registers the alias
    from apps.common.fsbroker import Transport

    with Connection("filesystem://") as conn:
        assert isinstance(conn.transport, Transport)


def test_a_message_appears_in_the_queue_folder_only_complete(tmp_path, monkeypatch):
    import config.celery  # noqa: F401

    folder, conn = _conn(tmp_path)
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        # Just before the message becomes visible: nothing of it is in the queue folder yet,
        # and the file about to appear already holds the whole message.
        seen.append((sorted(os.listdir(folder)), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with conn:
        q = conn.SimpleQueue("jobs")
        q.put({"job_id": 7})
        assert len(seen) == 1 and seen[0][0] == [] and seen[0][1] > 0
        assert [p for p in os.listdir(tmp_path) if p.startswith(".msg-")] == []  # no temp file left
        msg = q.get(timeout=2)
        assert msg.payload == {"job_id": 7}
        msg.ack()
        q.close()
