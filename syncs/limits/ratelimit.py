"""The rate budget per division (company), shared by every worker and process through Redis.

Exact allows about 60 calls a minute and 5000 a day per app and company, and reports both in X-RateLimit-*
headers (resets in epoch milliseconds; a 429 may carry only the exhausted window's headers, or none). A
last-seen counter is not enough when several workers share a division: each would see "1 left" and send.
So every request first *reserves* a slot with one atomic Lua script that

- refuses while a 429 block is in force (`blocked_until`, set by any worker that got a 429),
- refuses for the day when the daily budget is spent (RateLimitedError: hours are not worth a blocked worker),
- refills a window whose reset has passed (to the last known limit) and waits when the minute is spent,
- takes one of `max_in_flight` request slots (a sorted set scored by expiry, so a worker killed mid-request
  frees its slot after `slot_ttl` seconds instead of holding it forever),
- and only then decrements the known remaining budgets.

Each response then merges its headers in (`observe`): a newer window replaces ours, the same window keeps the
lower of ours and Exact's remaining count (ours already counts requests still in flight), an older window's
late answer is ignored. A 429 blocks every worker until the reported reset, or the next whole minute when the
429 carries no usable headers; it is not a failure. Times come from the injected clock, never Redis's, so a
FakeClock drives every wait in tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

from syncs.core.clock import Clock
from syncs.core.errors import LockUnavailableError, RateLimitedError
from syncs.core.lazy_logger import LazyLogger

log = LazyLogger(__name__)

STATE_TTL_SECONDS = 2 * 86400

# Outcomes: {"ok"}, {"wait", until}, {"slot", until}, {"daily", until}; numbers travel as strings.
RESERVE = """
local now, margin = tonumber(ARGV[1]), tonumber(ARGV[5])
local function num(f) local v = redis.call('HGET', KEYS[1], f); if v then return tonumber(v) end; return nil end
local function fmt(x) return string.format('%.3f', x) end
local blocked = num('blocked_until')
if blocked and blocked + margin > now then return {'wait', fmt(blocked + margin)} end
-- A window whose reset has passed starts again: full budget (when the limit is known) until the next boundary.
local function roll(kind, period)
  local rem, reset, limit = num(kind .. '_remaining'), num(kind .. '_reset'), num(kind .. '_limit')
  if reset and reset + margin <= now then
    reset = math.floor(now / period) * period + period
    redis.call('HSET', KEYS[1], kind .. '_reset', fmt(reset))
    if limit then rem = limit; redis.call('HSET', KEYS[1], kind .. '_remaining', rem)
    else rem = nil; redis.call('HDEL', KEYS[1], kind .. '_remaining') end
  end
  return rem, reset
end
local d_rem, d_reset = roll('daily', 86400)
if d_rem and d_rem <= 0 then
  return {'daily', fmt(d_reset or math.floor(now / 86400) * 86400 + 86400)}
end
local m_rem, m_reset = roll('minutely', 60)
if m_rem and m_rem <= 0 then
  return {'wait', fmt((m_reset or math.floor(now / 60) * 60 + 60) + margin)}
end
local max_in_flight, ttl = tonumber(ARGV[4]), tonumber(ARGV[3])
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_in_flight then
    return {'slot', redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]}
  end
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
  redis.call('EXPIRE', KEYS[2], math.ceil(ttl) + 60)
end
if m_rem then redis.call('HINCRBY', KEYS[1], 'minutely_remaining', -1) end
if d_rem then redis.call('HINCRBY', KEYS[1], 'daily_remaining', -1) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {'ok', '0'}
"""

# ARGV: now, status, then limit/remaining/reset for minutely and daily ('' when absent), state TTL.
# Every key's hash in one call (beat reads thousands of divisions' states per tick): {{field, value, ...}, ...}.
READ_ALL = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""

OBSERVE = """
local now, status = tonumber(ARGV[1]), tonumber(ARGV[2])
local function arg(i) if ARGV[i] == '' then return nil end; return tonumber(ARGV[i]) end
local function num(f) local v = redis.call('HGET', KEYS[1], f); if v then return tonumber(v) end; return nil end
local function fmt(x) return string.format('%.3f', x) end
local function merge(name, limit, rem, reset)
  if limit then redis.call('HSET', KEYS[1], name .. '_limit', limit) end
  if rem == nil then return end
  local cur_rem, cur_reset = num(name .. '_remaining'), num(name .. '_reset')
  if reset and (cur_reset == nil or reset > cur_reset + 1) then
    redis.call('HSET', KEYS[1], name .. '_remaining', rem, name .. '_reset', fmt(reset))
  elseif reset == nil or reset >= cur_reset - 1 then
    redis.call('HSET', KEYS[1], name .. '_remaining', math.min(cur_rem or rem, rem))
  end
end
local m_reset, d_rem = arg(5), arg(7)
merge('minutely', arg(3), arg(4), m_reset)
merge('daily', arg(6), d_rem, arg(8))
local blocked = nil
if status == 429 then
  if m_reset and m_reset > now then
    blocked = m_reset
    redis.call('HSET', KEYS[1], 'minutely_remaining', 0)
  elseif not (d_rem and d_rem <= 0) then
    blocked = math.floor(now / 60) * 60 + 60
  end
  if blocked then
    local cur = num('blocked_until')
    if cur == nil or cur < blocked then redis.call('HSET', KEYS[1], 'blocked_until', fmt(blocked)) end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
if blocked then return fmt(blocked) end
return ''
"""


@dataclass(frozen=True)
class Slot:
    """A held in-flight slot; `waited` is how long acquiring it slept (a token may have aged meanwhile)."""

    token: str
    waited: float


@dataclass(frozen=True)
class RateState:
    """What we know of a division's budgets (None: not reported yet). Times are epoch seconds."""

    minutely_limit: int | None = None
    minutely_remaining: int | None = None
    minutely_reset: float | None = None
    daily_limit: int | None = None
    daily_remaining: int | None = None
    daily_reset: float | None = None
    blocked_until: float | None = None  # set after a 429, honoured by every worker

    def daily_low(self, now: float, fraction: float) -> bool:
        """The day's budget is (nearly) spent: fewer than `fraction` of the limit left and no reset yet."""
        if self.daily_remaining is None or self.daily_reset is None or self.daily_reset <= now:
            return False
        if self.daily_limit:
            return self.daily_remaining < self.daily_limit * fraction
        return self.daily_remaining <= 0


def parse_reset(value: str | None) -> float | None:
    """Epoch seconds from a reset header: milliseconds per Exact's docs; small values are taken as seconds."""
    number = _float(value)
    if number is None or number <= 0:
        return None
    return number / 1000.0 if number > 1e11 else number


def parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class RateGate:
    """`acquire` before each request (it waits), `observe` its answer, `release` the slot afterwards."""

    def __init__(
        self,
        redis_client: redis.Redis[Any],
        key_prefix: str,
        clock: Clock,
        *,
        max_in_flight: int = 1,
        slot_ttl: float = 60.0,
        max_wait: float = 120.0,
        reset_margin: float = 0.5,
        poll: float = 0.05,
    ) -> None:
        self._redis = redis_client
        self._prefix = key_prefix
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._slot_ttl = slot_ttl
        self._max_wait = max_wait  # a longer wait means odd headers: give the task back, don't block a worker
        self._margin = reset_margin  # sent no earlier than this after a reset, for clock skew with Exact
        self._poll = poll
        self._reserve = redis_client.register_script(RESERVE)
        self._observe = redis_client.register_script(OBSERVE)
        self._read_all = redis_client.register_script(READ_ALL)

    def key(self, division: str) -> str:
        return f"{self._prefix}:rate:{division}"

    def slots_key(self, division: str) -> str:
        return f"{self._prefix}:inflight:{division}"

    def acquire(self, division: str) -> Slot:
        """Wait until `division` may be called and hold one in-flight slot (give it back with `release`).

        RateLimitedError when the day's budget is spent or a wait would exceed `max_wait`;
        LockUnavailableError when Redis is down or no slot frees up within `max_wait`.
        """
        token = uuid.uuid4().hex
        started = now = self._clock.now()  # a slot had at once has `waited` 0: no token re-check after it
        while True:
            args = [f"{now:.3f}", token, self._slot_ttl, self._max_in_flight, self._margin, STATE_TTL_SECONDS]
            kind, value = (_text(v) for v in self._call(self._reserve, division, args))
            until = float(value)
            if kind == "ok":
                return Slot(token, now - started)
            if kind == "daily":
                raise RateLimitedError(f"the daily Exact API budget of division {division} is spent", until)
            if kind == "wait":
                if until - now > self._max_wait:
                    raise RateLimitedError(f"division {division} is rate limited until {until:.0f}", until)
                log.info("ratelimit.wait", division=division, seconds=round(until - now, 3))
                self._clock.sleep(max(until - now, 0.001))
            else:
                if now - started > self._max_wait:  # "slot": others are calling this division right now
                    raise LockUnavailableError(
                        f"no request slot for division {division} within {self._max_wait:g} s"
                    )
                self._clock.sleep(min(self._poll, max(until - now, 0.001)))
            now = self._clock.now()

    def release(self, division: str, slot: Slot) -> None:
        try:
            self._redis.zrem(self.slots_key(division), slot.token)
        except (RedisError, OSError) as exc:  # the slot expires on its own
            log.warning("ratelimit.release_failed", division=division, error=str(exc))

    def observe(self, division: str, status_code: int, headers: Mapping[str, str]) -> None:
        """Record what a response tells about the budgets; after a 429 block every worker until the reset."""
        values = (
            parse_int(headers.get("X-RateLimit-Minutely-Limit")),
            parse_int(headers.get("X-RateLimit-Minutely-Remaining")),
            parse_reset(headers.get("X-RateLimit-Minutely-Reset")),
            parse_int(headers.get("X-RateLimit-Limit")),
            parse_int(headers.get("X-RateLimit-Remaining")),
            parse_reset(headers.get("X-RateLimit-Reset")),
        )
        if status_code != 429 and all(v is None for v in values):
            return
        args = [f"{self._clock.now():.3f}", status_code, *("" if v is None else v for v in values), STATE_TTL_SECONDS]
        blocked = _text(self._call(self._observe, division, args))
        if status_code == 429:
            log.info("ratelimit.429", division=division, blocked_until=float(blocked) if blocked else None)

    def status(self, division: str) -> RateState:
        return self.statuses([division])[division]

    def statuses(self, divisions: Sequence[str]) -> dict[str, RateState]:
        """Several divisions' states in one round trip (beat checks thousands per tick)."""
        try:
            found = self._read_all(keys=[self.key(division) for division in divisions])
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"rate gate: Redis unavailable ({exc})") from None
        return {division: _state(flat) for division, flat in zip(divisions, found, strict=True)}

    def _call(self, script: Any, division: str, args: list[Any]) -> Any:
        try:
            return script(keys=[self.key(division), self.slots_key(division)], args=args)
        except (RedisError, OSError) as exc:
            raise LockUnavailableError(f"rate gate: Redis unavailable ({exc})") from None


def _state(flat: list[Any]) -> RateState:
    """A RateState from HGETALL's reply as Lua returns it: field, value, field, value, ..."""
    values = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
    return RateState(
        minutely_limit=parse_int(values.get("minutely_limit")),
        minutely_remaining=parse_int(values.get("minutely_remaining")),
        minutely_reset=_float(values.get("minutely_reset")),
        daily_limit=parse_int(values.get("daily_limit")),
        daily_remaining=parse_int(values.get("daily_remaining")),
        daily_reset=_float(values.get("daily_reset")),
        blocked_until=_float(values.get("blocked_until")),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
