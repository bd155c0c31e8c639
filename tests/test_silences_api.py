"""Silences through Alertmanager's API v2 (`/api/v2/silences`, `/api/v2/silence/{id}`): create, list, get,
update in place versus replace, expire by DELETE, validation, and their effect on notifications."""
from __future__ import annotations

from typing import Any

import pytest

from service.core.clock import to_rfc3339
from tests.pipeline_kit import T0, Harness, alert


def silence(start: float = T0, end: float = T0 + 3600, **over: Any) -> dict[str, Any]:
    d = {"matchers": [{"name": "alertname", "value": "HighLatency", "isRegex": False, "isEqual": True}],
         "startsAt": to_rfc3339(start), "endsAt": to_rfc3339(end), "createdBy": "alice", "comment": "maintenance"}
    d.update(over)
    return d


async def create(h: Harness, body: dict[str, Any]) -> str:
    r = await h.post("/api/v2/silences", body)
    assert r.status == 200, await r.text()
    return (await r.json())["silenceID"]


async def get(h: Harness, sid: str) -> dict[str, Any]:
    r = await h.client.get(f"/api/v2/silence/{sid}")
    assert r.status == 200
    return await r.json()


async def test_create_list_and_get(h: Harness) -> None:
    """A created silence gets an id and is listed and fetched with its matchers, times, author and state."""
    sid = await create(h, silence())
    r = await h.client.get("/api/v2/silences")
    assert r.status == 200
    [listed] = await r.json()
    one = await get(h, sid)
    assert listed == one
    assert one["id"] == sid
    assert one["status"] == {"state": "active"}
    assert one["matchers"] == [{"name": "alertname", "value": "HighLatency", "isRegex": False, "isEqual": True}]
    assert (one["startsAt"], one["endsAt"]) == (to_rfc3339(T0), to_rfc3339(T0 + 3600))
    assert (one["createdBy"], one["comment"]) == ("alice", "maintenance")


async def test_future_silence_is_pending_then_active(h: Harness) -> None:
    """A silence that starts later is pending until its start, then active."""
    sid = await create(h, silence(start=T0 + 60))
    assert (await get(h, sid))["status"]["state"] == "pending"
    h.clock.advance(60)
    assert (await get(h, sid))["status"]["state"] == "active"


async def test_start_in_the_past_is_moved_to_now(h: Harness) -> None:
    """A new silence whose start is in the past starts now."""
    sid = await create(h, silence(start=T0 - 600))
    assert (await get(h, sid))["startsAt"] == to_rfc3339(T0)


async def test_update_with_same_matchers_is_in_place(h: Harness) -> None:
    """Changing only the end and comment of an active silence keeps its id (Alertmanager's canUpdate)."""
    sid = await create(h, silence())
    h.clock.advance(10)
    sid2 = await create(h, silence(end=T0 + 7200, id=sid, comment="longer"))
    assert sid2 == sid
    s = await get(h, sid)
    assert (s["endsAt"], s["comment"], s["startsAt"]) == (to_rfc3339(T0 + 7200), "longer", to_rfc3339(T0))
    assert len(await (await h.client.get("/api/v2/silences")).json()) == 1


async def test_update_of_a_pending_silence_can_move_its_start(h: Harness) -> None:
    """A pending silence can be updated in place, start included."""
    sid = await create(h, silence(start=T0 + 600))
    assert await create(h, silence(start=T0 + 1200, id=sid)) == sid
    assert (await get(h, sid))["startsAt"] == to_rfc3339(T0 + 1200)


async def test_update_with_other_matchers_replaces_and_expires_the_old(h: Harness) -> None:
    """Changing the matchers creates a new silence and expires the old one."""
    sid = await create(h, silence())
    h.clock.advance(10)
    other = [{"name": "alertname", "value": "Other", "isRegex": False, "isEqual": True}]
    sid2 = await create(h, silence(id=sid, matchers=other))
    assert sid2 != sid
    old, new = await get(h, sid), await get(h, sid2)
    assert old["status"]["state"] == "expired" and old["endsAt"] == to_rfc3339(T0 + 10)
    assert new["status"]["state"] == "active" and new["matchers"][0]["value"] == "Other"


async def test_update_moving_an_active_start_replaces(h: Harness) -> None:
    """Moving the start of an active silence rewrites its past, so it becomes a new silence."""
    sid = await create(h, silence())
    h.clock.advance(10)
    sid2 = await create(h, silence(start=T0 + 100, id=sid))
    assert sid2 != sid
    assert (await get(h, sid))["status"]["state"] == "expired"
    assert (await get(h, sid2))["status"]["state"] == "pending"


async def test_update_of_an_expired_silence_creates_a_new_one(h: Harness) -> None:
    """Posting an update for an expired silence creates a new silence and leaves the old one as it was."""
    sid = await create(h, silence(end=T0 + 60))
    h.clock.advance(120)
    sid2 = await create(h, silence(end=T0 + 3600, id=sid))
    assert sid2 != sid
    assert (await get(h, sid))["endsAt"] == to_rfc3339(T0 + 60)
    assert (await get(h, sid2))["status"]["state"] == "active"


async def test_update_of_an_unknown_id_is_404(h: Harness) -> None:
    """Updating a silence id that does not exist answers 404."""
    r = await h.post("/api/v2/silences", silence(id="00000000-0000-0000-0000-000000000000"))
    assert r.status == 404


async def test_delete_expires(h: Harness) -> None:
    """DELETE expires a silence: it stays listed as expired, ending now; deleting it again is an error."""
    sid = await create(h, silence())
    h.clock.advance(30)
    r = await h.client.delete(f"/api/v2/silence/{sid}")
    assert r.status == 200
    s = await get(h, sid)
    assert s["status"]["state"] == "expired" and s["endsAt"] == to_rfc3339(T0 + 30)
    assert (await h.client.delete(f"/api/v2/silence/{sid}")).status == 500  # Alertmanager: already expired


async def test_delete_of_a_pending_silence_expires_it_without_a_window(h: Harness) -> None:
    """Deleting a pending silence expires it with start = end = now, so it never mutes anything."""
    sid = await create(h, silence(start=T0 + 600))
    assert (await h.client.delete(f"/api/v2/silence/{sid}")).status == 200
    s = await get(h, sid)
    assert s["status"]["state"] == "expired" and s["startsAt"] == s["endsAt"] == to_rfc3339(T0)


async def test_unknown_id_is_404(h: Harness) -> None:
    """GET and DELETE of an unknown silence id answer 404; an id that is not a UUID is a 422 (Alertmanager's schema)."""
    unknown = "8c0b2a5e-1d3f-4c1e-9a7b-2f6d5e4c3b2a"
    assert (await h.client.get(f"/api/v2/silence/{unknown}")).status == 404
    assert (await h.client.delete(f"/api/v2/silence/{unknown}")).status == 404
    assert (await h.client.get("/api/v2/silence/nope")).status == 422
    assert (await h.client.delete("/api/v2/silence/nope")).status == 422


@pytest.mark.parametrize("over,path", [
    ({"matchers": []}, "matchers"),
    ({"matchers": None}, "matchers"),
    ({"matchers": [{"name": "env", "value": "", "isRegex": False, "isEqual": True}]}, "matchers"),
    ({"matchers": [{"name": "env", "value": ".*", "isRegex": True, "isEqual": True}]}, "matchers"),
    ({"matchers": [{"name": "env", "value": "a(", "isRegex": True, "isEqual": True}]}, "matchers[0].value"),
    ({"matchers": [{"name": "bad-name", "value": "x"}]}, "matchers[0].name"),
    ({"matchers": [{"name": "env", "value": 3}]}, "matchers[0].value"),
    ({"endsAt": to_rfc3339(T0 - 1), "startsAt": to_rfc3339(T0 - 100)}, "endsAt"),
    ({"endsAt": to_rfc3339(T0 + 10), "startsAt": to_rfc3339(T0 + 100)}, "endsAt"),
    ({"endsAt": to_rfc3339(T0 + 100), "startsAt": to_rfc3339(T0 + 100)}, "endsAt"),
    ({"startsAt": "now"}, "startsAt"),
    ({"endsAt": "tomorrow"}, "endsAt"),
    ({"startsAt": None}, "startsAt"),
    ({"createdBy": ""}, "createdBy"),
    ({"comment": ""}, "comment"),
])
async def test_invalid_silences_are_400_with_the_path(h: Harness, over: dict[str, Any], path: str) -> None:
    """No matchers, matchers that all match the empty string, a bad regex or label name, an end in the past or
    before the start, and missing author or comment are rejected naming the field (422 for a missing or empty
    matcher list, a schema violation in Alertmanager's API; 400 otherwise); nothing is stored."""
    r = await h.post("/api/v2/silences", silence(**over))
    assert r.status == (422 if over.get("matchers") in ([], None) and "matchers" in over else 400)
    body = await r.json()
    assert body["errors"][0]["path"] == path, body
    assert await (await h.client.get("/api/v2/silences")).json() == []


async def test_non_object_body_is_400(h: Harness) -> None:
    """A silence body that is not a JSON object answers 400."""
    assert (await h.post("/api/v2/silences", [silence()])).status == 400


async def test_a_silence_mutes_notifications_and_expiring_it_lets_them_through(h: Harness) -> None:
    """Alerts matching an active silence are shown suppressed and not notified; once expired they notify."""
    sid = await create(h, silence())
    await h.post("/api/v2/alerts", [alert("HighLatency", ends=T0 + 7200), alert("DiskFull", ends=T0 + 7200)])
    [a, b] = sorted(await h.alerts(), key=lambda x: x["labels"]["alertname"])
    assert a["labels"]["alertname"] == "DiskFull" and a["status"]["state"] == "active"
    assert b["status"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
    r = await h.client.get("/api/v2/alerts", params={"silenced": "false"})
    assert [x["labels"]["alertname"] for x in await r.json()] == ["DiskFull"]
    await h.step(30)
    assert [n.alerts[0].labels["alertname"] for n in h.sink] == ["DiskFull"]
    await h.step(300)
    assert len(h.sink) == 1
    assert (await h.client.delete(f"/api/v2/silence/{sid}")).status == 200
    await h.step(300)
    assert [n.alerts[0].labels["alertname"] for n in h.sink] == ["DiskFull", "HighLatency"]
    assert h.sink[1].status == "firing"


async def test_a_silence_that_ends_lets_notifications_through(h: Harness) -> None:
    """When a silence's end passes, the next group flush notifies the alerts it muted."""
    await create(h, silence(end=T0 + 120))
    await h.post("/api/v2/alerts", [alert("HighLatency", ends=T0 + 3600)])
    await h.step(30)
    assert h.sink == []
    await h.step(300)
    assert [n.alerts[0].labels["alertname"] for n in h.sink] == ["HighLatency"]


async def test_regex_and_negative_matchers_mute_what_they_match(h: Harness) -> None:
    """A silence with a regex and a not-equal matcher mutes exactly the alerts matching both."""
    await create(h, silence(matchers=[{"name": "alertname", "value": "High.*", "isRegex": True, "isEqual": True},
                                      {"name": "env", "value": "prod", "isRegex": False, "isEqual": False}]))
    await h.post("/api/v2/alerts", [alert("HighLatency", env="dev"), alert("HighLatency", env="prod"),
                                    alert("HighErrors"), alert("Low", env="dev")])
    await h.step(30)
    got = sorted((a.labels["alertname"], a.labels.get("env", "")) for n in h.sink for a in n.alerts)
    assert got == [("HighLatency", "prod"), ("Low", "dev")]


async def test_list_is_filtered_and_ordered_like_alertmanager(h: Harness) -> None:
    """GET /api/v2/silences honours filter matchers and lists active (by end), pending (by start), then expired."""
    def m(v: str) -> list[dict[str, Any]]:
        return [{"name": "alertname", "value": v, "isRegex": False, "isEqual": True}]

    late = await create(h, silence(end=T0 + 7200, matchers=m("Late")))
    soon = await create(h, silence(end=T0 + 600, matchers=m("Soon")))
    pending = await create(h, silence(start=T0 + 60, matchers=m("Pending")))
    gone = await create(h, silence(matchers=m("Gone")))
    await h.client.delete(f"/api/v2/silence/{gone}")
    r = await h.client.get("/api/v2/silences")
    assert [s["id"] for s in await r.json()] == [soon, late, pending, gone]
    r = await h.client.get("/api/v2/silences", params={"filter": 'alertname=~"L.*|P.*"'})
    assert [s["id"] for s in await r.json()] == [late, pending]
    r = await h.client.get("/api/v2/silences", params={"filter": 'env="prod"'})
    assert await r.json() == []


async def test_silence_regexes_are_go_regexes_anchored(h: Harness) -> None:
    """Silence regexes are anchored Go regexps: a partial match does not mute, and Python-only syntax is a 400."""
    r = await h.post("/api/v2/silences", silence(matchers=[{"name": "alertname", "value": "(?=High)",
                                                            "isRegex": True, "isEqual": True}]))
    assert r.status == 400
    assert (await r.json())["errors"][0]["path"] == "matchers[0].value"
    await create(h, silence(matchers=[{"name": "alertname", "value": "High|Low", "isRegex": True, "isEqual": True}]))
    await h.post("/api/v2/alerts", [alert("High"), alert("HighLatency"), alert("Low")])
    await h.step(30)
    assert sorted(a.labels["alertname"] for n in h.sink for a in n.alerts) == ["HighLatency"]
