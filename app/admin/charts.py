"""Inline SVG charts: bar geometry computed here, drawn by the template."""
from __future__ import annotations

CHART_WIDTH, CHART_HEIGHT = 760, 220
CHART_LEFT, CHART_BOTTOM, CHART_TOP = 56, 28, 12

def _nice_step(value: float) -> int:
    """The smallest 1, 2 or 5 × 10^k at or above `value`, so axis labels are round numbers."""
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def usage_chart(days: list[dict], metric: str = "credits") -> dict:
    """Bar geometry for an inline SVG: one bar per day (each keeps its day's fields), a y axis in round
    steps (at most five lines), at most ~10 date labels."""
    highest = max((d[metric] for d in days), default=0)
    step = _nice_step(highest / 4)
    top = max(step, -(-highest // step) * step)
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT - 8, CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    slot = plot_w / max(1, len(days))
    label_every = max(1, -(-len(days) // 10))
    bars = []
    for index, item in enumerate(days):
        height = plot_h * item[metric] / top
        bars.append({**item, "day": item["key"], "value": item[metric],
                     "x": round(CHART_LEFT + index * slot + slot * 0.1, 2), "width": round(max(1.0, slot * 0.8), 2),
                     "y": round(CHART_TOP + plot_h - height, 2), "height": round(height, 2),
                     "label": item["key"][5:] if index % label_every == 0 else None,
                     "minor": index % (2 * label_every) != 0,  # every other label, dropped on a phone
                     "label_x": round(CHART_LEFT + index * slot + slot / 2, 2)})
    ticks = [{"value": value, "y": round(CHART_TOP + plot_h - plot_h * value / top, 2)}
             for value in range(0, top + 1, step)]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT, "base": CHART_TOP + plot_h,
            "right": CHART_WIDTH - 8, "bars": bars, "ticks": ticks, "metric": metric}


SIZE_UNITS = (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024), ("bytes", 1))


def size_chart(days: list[dict], field: str = "storage_bytes") -> dict:
    """A chart of a byte count per day, in the largest unit its highest day fills (bars in whole units)."""
    highest = max((day[field] for day in days), default=0)
    unit, scale = next(((unit, scale) for unit, scale in SIZE_UNITS if highest >= scale), SIZE_UNITS[-1])
    items = [{**day, "key": day["date"].isoformat(), "in_unit": round(day[field] / scale)} for day in days]
    return {**usage_chart(items, "in_unit"), "unit": unit}
