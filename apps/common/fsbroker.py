"""The embedded broker: kombu's filesystem transport with messages that appear whole.

kombu's filesystem transport creates the message file in the queue folder and then
writes it. A consumer that lists the folder between the two moves the empty file
away and reads nothing: the message is gone, and its job waits for the sweeper
(minutes). Two workers on one machine under load hit that window. Here the file is
written beside the queue folder and renamed into it, which is atomic on one
filesystem, so a consumer sees a message complete or not at all."""
from __future__ import annotations

import os
import tempfile
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        # The temporary file lives in the queue folder's parent: the same filesystem
        # (so the rename is atomic), and not a folder any consumer lists.
        fd, tmp = tempfile.mkstemp(prefix=".msg-", dir=os.path.dirname(os.path.abspath(folder)))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, os.path.join(folder, name))
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise filesystem.ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
