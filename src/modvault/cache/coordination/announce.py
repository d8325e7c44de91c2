"""Telling running servers about a change made by a command (``modvault block``, ``rm``...).

The command has no event loop or service: it rewrites the mapped token that this machine's workers
watch (state.LocalChanges) and, with Redis coordination, publishes the change on the channel every
replica listens to. A Redis failure is logged and ignored: the servers still pick blocks up from
the store within about a second, and cached answers expire.
"""

from __future__ import annotations

import logging

from modvault.cache.coordination.state import Change, LocalChanges
from modvault.config import Settings

LOG = logging.getLogger("modvault.coordination")


def announce_sync(settings: Settings, change: Change) -> None:
    local = LocalChanges(settings.data_dir, create=False)  # no file: no server to tell
    local.bump()
    if settings.coordination == "local":
        return
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(settings.coordination, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.publish("mv:changes", change.encode())
    except (RedisError, OSError) as exc:
        LOG.warning("could not tell other replicas about %s %s (%s): they notice within seconds",
                    change.event, change.module, type(exc).__name__)
    finally:
        client.close()
