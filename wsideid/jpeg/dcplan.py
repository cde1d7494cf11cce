"""Choose DC values for runs of blanked blocks that the DC table can code.

A flat block is its DC coefficient alone, and DC is coded as the difference
from the previous block of the same component. Optimised Huffman tables
hold only the difference categories their image used, so the step from the
last kept block into the blanked run, and from the run back to the next
kept block, may have no code. Emitting it anyway would corrupt the stream.

For each run of consecutive blanked blocks of one component (in coding
order) this module picks values d_1..d_n such that every difference
(d_1 - a, d_2 - d_1, ..., b - d_n) has a code, preferring at each block the
value closest to the target fill t. That one greedy rule covers three
cases: when all steps exist every block gets t exactly; when the run is one
block long it picks the nearest codable fill; when a big step is missing it
ramps towards t (and back towards b) over several blocks. Every block stays
flat, only its shade may differ from the fill. When no sequence exists the
caller raises.

Sets of integers are kept as sorted lists of disjoint inclusive intervals:
the allowed differences are a union of at most 23 intervals (one per
category and sign), so reachability stays cheap.
"""

from __future__ import annotations

Intervals = list[tuple[int, int]]


def allowed_steps(categories) -> Intervals:
    """Differences codable with the given DC categories (SSSS values)."""
    out: Intervals = []
    for c in categories:
        if c == 0:
            out.append((0, 0))
        elif 1 <= c <= 15:
            out.append((1 << (c - 1), (1 << c) - 1))
            out.append((-((1 << c) - 1), -(1 << (c - 1))))
    return _merge(out)


def _merge(iv: Intervals) -> Intervals:
    iv = sorted(iv)
    out: Intervals = []
    for a, b in iv:
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _clip(iv: Intervals, lo: int, hi: int) -> Intervals:
    return [(max(a, lo), min(b, hi)) for a, b in iv if b >= lo and a <= hi]


def _add(s: Intervals, steps: Intervals, lo: int, hi: int) -> Intervals:
    """{x + d : x in s, d in steps} clipped to [lo, hi]."""
    return _clip(_merge([(a + c, b + d) for a, b in s for c, d in steps]), lo, hi)


def _shift(steps: Intervals, x: int, lo: int, hi: int) -> Intervals:
    return _clip([(x + a, x + b) for a, b in steps], lo, hi)


def _intersect(s: Intervals, t: Intervals) -> Intervals:
    out: Intervals = []
    i = j = 0
    while i < len(s) and j < len(t):
        a, b = max(s[i][0], t[j][0]), min(s[i][1], t[j][1])
        if a <= b:
            out.append((a, b))
        if s[i][1] < t[j][1]:
            i += 1
        else:
            j += 1
    return out


def _contains(s: Intervals, x: int) -> bool:
    return any(a <= x <= b for a, b in s)


def _closest(s: Intervals, t: int) -> int:
    best = None
    for a, b in s:
        x = min(max(t, a), b)
        if best is None or abs(x - t) < abs(best - t):
            best = x
    return best  # type: ignore[return-value]


def plan_run(
    a: int, b: int | None, n: int, t: int, steps: Intervals, lo: int, hi: int
) -> list[int] | None:
    """DC values for ``n`` blanked blocks between kept values ``a`` and ``b``.

    ``a`` is the predictor before the run (0 after a restart), ``b`` the DC
    of the next kept block or None if the run ends its restart interval.
    Values stay within [lo, hi] (the pixel range). Returns None when no
    sequence exists.
    """
    negsteps = [(-d, -c) for c, d in reversed(steps)]
    t = min(max(t, lo), hi)
    # Fast path: every step to, within and out of the run exists.
    if (
        _contains(steps, t - a)
        and (n == 1 or _contains(steps, 0))
        and (b is None or _contains(steps, b - t))
    ):
        return [t] * n
    full: Intervals = [(lo, hi)]
    # back[i]: values block i may take so that b stays reachable.
    back: list[Intervals] = [full] * n
    if b is not None:
        back[n - 1] = _clip(_add([(b, b)], negsteps, lo, hi), lo, hi)
        for i in range(n - 2, -1, -1):
            nxt = _add(back[i + 1], negsteps, lo, hi)
            back[i] = nxt
            if nxt == back[i + 1]:  # fixed point: earlier blocks alike
                for j in range(i):
                    back[j] = nxt
                break
    out: list[int] = []
    cur = a
    for i in range(n):
        cand = _intersect(_shift(steps, cur, lo, hi), back[i])
        if not cand:
            return None
        cur = _closest(cand, t)
        out.append(cur)
    return out
