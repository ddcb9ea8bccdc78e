"""Realistic ~1 KB feedback items, a fixed share of them negative, English and Chinese."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

NEGATIVE_EN = (
    "I have called three times about the broken router and nobody has come to fix it. "
    "The internet has been down for four days, I work from home and I am losing money. "
    "Your support staff keep promising a technician and then nothing happens. This is the "
    "worst service I have ever had and I want a refund for the days without a connection."
)
POSITIVE_EN = (
    "The technician arrived on time, explained everything clearly and the new router works "
    "perfectly. Speeds are better than before and the app shows the usage nicely. Thank you "
    "to the team for sorting this out so quickly, I am very happy with the service and will "
    "recommend you to my friends and family, and to my neighbours on the same street too."
)
# (It used to end "... who are looking for a new provider this year": the urgency rules
# read that as a churn cue and scored the whole praise negative, so 70 % of the benchmark's
# items raised alerts instead of the one in five it is built to send.)
NEGATIVE_ZH = "宽带已经断了四天了，打了三次电话都没有人来修，客服每次都说会安排师傅，结果一直没人来，太差了，我要求退款。"
POSITIVE_ZH = "师傅准时上门，耐心讲解，新的路由器很好用，网速比以前快多了，客服也很热情，非常满意，会推荐给朋友。"


def item(index: int, run: str, negative_every: int = 5) -> dict[str, object]:
    """Item ``index`` of a run; every ``negative_every``-th item is negative."""
    negative = index % negative_every == 0
    chinese = index % 2 == 1
    text = (
        (NEGATIVE_ZH if chinese else NEGATIVE_EN)
        if negative
        else (POSITIVE_ZH if chinese else POSITIVE_EN)
    )
    return {
        "channel": ("hotline", "email", "social", "app")[index % 4],
        "external_id": f"bench-{run}-{index}",
        "text": text,
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": "Follow-up on my fiber connection and the technician visit",
        "customer": {
            "id": f"cust-{index % 997}",
            "name": "Alex Morgan",
            "email": f"customer{index % 997}@example.com",
            "phone": "+14155550199",
            "tier": "gold" if index % 3 == 0 else "standard",
        },
        "touchpoint": "call_center",
        "journey_stage": "support",
        "attributes": {
            "plan": "fiber-500",
            "region": "north",
            "ticket": f"T-{index}",
            "queue": "technical-support",
            "agent_id": "agent-0427",
            "call_duration_s": 412,
            "app_version": "5.2.1",
            "device": "android-14",
            "order_id": "ORD-2026-118734",
            "contract_months_left": 14,
        },
    }


def new_run() -> str:
    return uuid.uuid4().hex[:10]


def _lua_string(template: str) -> str:
    return '"' + template.replace("\\", "\\\\").replace('"', '\\"') + '"'


def one_item_lua_body() -> str:
    """A Lua expression building one ~1 KB item with a unique external id per request."""
    template = json.dumps(item(2, "RUN"), ensure_ascii=False).replace("bench-RUN-2", "bench-%d-%d")
    return f"string.format({_lua_string(template)}, tid, n)"


def batch_lua_body(size: int) -> str:
    """A Lua expression building a batch of ``size`` items, one in five negative."""
    negative = json.dumps(item(0, "RUN"), ensure_ascii=False).replace(
        "bench-RUN-0", "bench-%d-%d-%d"
    )
    positive = json.dumps(item(2, "RUN"), ensure_ascii=False).replace(
        "bench-RUN-2", "bench-%d-%d-%d"
    )
    return (
        "(function() local parts = {} "
        f"for i = 1, {size} do "
        f"local t = {_lua_string(positive)} "
        f"if i % 5 == 0 then t = {_lua_string(negative)} end "
        "parts[i] = string.format(t, tid, n, i) end "
        'return "{\\"items\\":[" .. table.concat(parts, ",") .. "]}" end)()'
    )
