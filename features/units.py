"""Time units as integer counts of microseconds (and nanoseconds), defined once for every package.

Times are int64 microseconds since the epoch, UTC, wherever one record's or one column's arithmetic
is done on integers (the contracts' ``datetime64[us, UTC]``, the batch and online engines, the
state, the generator); screening compares birth dates in nanoseconds. Ages and validities count
years of 365.25 days. Every constant is an exact ``int``, so sums and floor divisions stay exact.
"""

from __future__ import annotations

US_PER_MS = 1_000
US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
US_PER_YEAR = 365 * US_PER_DAY + US_PER_DAY // 4  # 365.25 days
SECONDS_PER_DAY = US_PER_DAY // US_PER_SECOND
NS_PER_US = 1_000
NS_PER_DAY = US_PER_DAY * NS_PER_US
