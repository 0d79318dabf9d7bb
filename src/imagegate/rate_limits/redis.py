"""Counters in Redis, shared by every API process that points at it.

Each counter is one hash, ``<prefix><key>:<window_s>``, with a field per fixed window.
One Lua script reads, decides and adds, so the check and the add are atomic across
processes; it takes the time from Redis itself, so API hosts whose clocks disagree
still agree on the windows."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from imagegate.observability.logging import get_logger
from imagegate.rate_limits.base import Count, CountersUnavailable

log = get_logger("imagegate.rate_limits")

# KEYS[1]: the counter. ARGV: amount, window (ms), limit (-1: none).
# Returns {accepted (0|1), previous, current, elapsed (ms)}.
ADD_SCRIPT = """
local amount = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now / window)
local elapsed = now - index * window
local counts = redis.call('HMGET', KEYS[1], index - 1, index)
local previous = tonumber(counts[1]) or 0
local current = tonumber(counts[2]) or 0
local total = math.ceil(previous * (window - elapsed) / window) + current
if limit >= 0 and total + amount > limit then
  return {0, previous, current, elapsed}
end
if amount ~= 0 then
  current = redis.call('HINCRBY', KEYS[1], index, amount)
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if tonumber(field) < index - 1 then
      redis.call('HDEL', KEYS[1], field)
    end
  end
  redis.call('PEXPIRE', KEYS[1], window * 2)
end
return {1, previous, current, elapsed}
"""

# Counters sit on the request path: a slow or absent Redis must cost a request
# little, so calls time out fast and are retried once at most (for a pooled
# connection that Redis closed), and after a failure the store does not try again
# for a while.
TIMEOUT_S = 0.5
COOLDOWN_S = 5.0
# Connections per process, shared by every request: a burst waits for a free one (up
# to POOL_WAIT_S) instead of opening one connection per request in flight, which on a
# busy machine turns into a storm of connects that each time out. A counter update
# takes well under a millisecond, so 16 carry thousands of requests a second.
MAX_CONNECTIONS = 16
POOL_WAIT_S = 1.0


class RedisCounterStore:
    backend = "redis"

    def __init__(
        self,
        client: Redis,
        prefix: str = "imagegate:",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(ADD_SCRIPT)
        self._monotonic = monotonic
        self._down_until = 0.0
        self._down = False

    @classmethod
    def from_url(cls, url: str, prefix: str = "imagegate:") -> RedisCounterStore:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), retries=1),
        )
        return cls(Redis(connection_pool=pool), prefix)

    async def add(self, key: str, amount: int, window_s: int, limit: int | None = None) -> Count:
        self._check_cooldown()
        window_ms = window_s * 1000
        name = f"{self._prefix}{key}:{window_s}"
        try:
            reply = await self._script(
                keys=[name], args=[amount, window_ms, -1 if limit is None else limit]
            )
        except (RedisError, OSError) as error:
            raise self._went_down(error) from error
        self._came_up()
        accepted, previous, current, elapsed = (int(value) for value in reply)
        return Count(bool(accepted), previous, current, elapsed, window_ms)

    async def ping(self) -> None:
        self._check_cooldown()
        try:
            # redis-py types its commands for the sync and asyncio clients at once.
            await cast(Awaitable[bool], self._client.ping())
        except (RedisError, OSError) as error:
            raise self._went_down(error) from error
        self._came_up()

    async def close(self) -> None:
        await self._client.aclose(close_connection_pool=True)

    def _check_cooldown(self) -> None:
        if self._monotonic() < self._down_until:
            raise CountersUnavailable("Redis failed moments ago; not trying again yet")

    def _went_down(self, error: Exception) -> CountersUnavailable:
        # Logged once per try, and tries are at most one per cooldown: an outage
        # leaves a steady trace in the log without flooding it.
        log.warning("counters.unavailable", error=repr(error), retry_in_s=COOLDOWN_S)
        self._down = True
        self._down_until = self._monotonic() + COOLDOWN_S
        return CountersUnavailable(repr(error))

    def _came_up(self) -> None:
        if self._down:
            self._down = False
            log.info("counters.recovered")
