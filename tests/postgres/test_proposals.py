"""synap_proposals_info (cheap counts, named methods, stale pending) and synap_proposals (by id only)."""

from __future__ import annotations

import uuid

import pytest
from pg_faults import blocking_chain


@pytest.fixture
def seeded(pg, proposals_clean):
    """3 workspaces (aiAutoApprove true / false / unset); 5 pending (3 an hour old), 3000 validated, 20 rejected."""
    with pg.connect() as conn:
        ws = [str(r[0]) for r in conn.execute(
            "INSERT INTO workspaces (name, settings) VALUES ('a', '{\"aiAutoApprove\": true}'), "
            "('b', '{\"aiAutoApprove\": false}'), ('c', '{}') RETURNING id").fetchall()]
        insert = ("INSERT INTO proposals (workspace_id, target_type, target_id, request, status, created_at) "
                  "SELECT %s, 'entity', 'e-' || g, '{}', %s, now() - make_interval(secs => %s) "
                  "FROM generate_series(1, %s) g")
        conn.execute(insert, (ws[0], "pending", 3600, 3))
        conn.execute(insert, (ws[1], "pending", 10, 2))
        for i, workspace in enumerate(ws):
            conn.execute(insert, (workspace, "validated", 7200, 1000))
            conn.execute(insert, (workspace, "rejected", 7200, 5 + 5 * (i == 0)))
        conn.execute("ANALYZE proposals")
        ids = {status: [str(r[0]) for r in conn.execute(
            "SELECT id FROM proposals WHERE status = %s ORDER BY created_at, id", (status,)).fetchall()]
            for status in ("pending", "rejected")}
    return ids


def test_counts_name_their_method(module, superuser_args, seeded):
    result = module("synap_proposals_info", dict(superuser_args, exact_limit=1000, pending_older_than=300))
    assert result["changed"] is False and result["reachable"] is True
    counts = result["counts"]
    assert (counts["pending"]["count"], counts["pending"]["exact"], counts["pending"]["method"]) == (5, True, "index")
    assert "index (workspace_id, status)" in counts["pending"]["method_detail"]
    assert counts["rejected"]["count"] == 20 and counts["rejected"]["method"] == "index"
    assert (counts["approved"]["count"], counts["approved"]["method"]) == (0, "index")
    assert counts["validated"]["method"] == "estimate" and counts["validated"]["exact"] is False
    assert abs(counts["validated"]["count"] - 3000) <= 30
    assert "planner statistics" in counts["validated"]["method_detail"]
    assert result["pending_total"] == 5 and result["stale_pending_count"] == 3
    assert [p["id"] for p in result["stale_pending"]] == seeded["pending"][:3]
    assert 3500 < result["oldest_pending_seconds"] < 4000
    assert result["workspaces_with_proposals"] == 3
    assert result["auto_approve"] == {"true": 1, "false": 1, "unset": 1}
    assert len(result["auto_approve_sample"]) == 3 and result["auto_approve_sample"][0]["ai_auto_approve"] == "true"
    assert not any("GROUP BY status" in q for q in result["queries"])
    assert "pending 5 (index)" in result["msg"] and "3 pending > 300 s" in result["msg"]


def test_exact_method_is_the_runbook_full_scan(module, superuser_args, seeded):
    result = module("synap_proposals_info", dict(superuser_args, count_method="exact"))
    assert result["counts"]["validated"] == dict(count=3000, exact=True, method="full_scan",
                                                 method_detail=result["counts"]["validated"]["method_detail"])
    assert any("GROUP BY status" in q for q in result["queries"])


def test_estimate_method_touches_no_rows_for_counts(module, superuser_args, seeded):
    result = module("synap_proposals_info", dict(superuser_args, count_method="estimate"))
    assert {c["method"] for c in result["counts"].values()} == {"estimate"}
    # A status the statistics do not mention was not counted: null, not 0.
    assert result["counts"]["approved"]["count"] is None and "not counted" in result["counts"]["approved"]["method_detail"]
    assert result["pending_total"] == 5  # pending itself always comes from the index


def test_missing_tables_is_a_finding(module, superuser_args):
    result = module("synap_proposals_info", dict(superuser_args, db="postgres"))
    assert result["reachable"] is False and result["failure"] == "not_found" and result["changed"] is False
    assert result["failures"] == {"proposals": "table proposals does not exist"}
    assert result["counts"] is None and result["pending_total"] is None and result["auto_approve"] is None
    assert "no proposals table" in result["msg"] and "postgres@127.0.0.1:" in result["msg"]


def status_of(pg, ids):
    with pg.connect() as conn:
        return {str(r[0]): (r[1], r[2], r[3] is not None) for r in conn.execute(
            "SELECT id, status, reviewed_by, reviewed_at FROM proposals WHERE id = ANY(%s::uuid[])", (ids,))}


def test_validate_by_id_check_real_again(pg, module, superuser_args, seeded):
    chosen = seeded["pending"][:2]
    unknown = str(uuid.uuid4())
    args = dict(superuser_args, ids=[*chosen, unknown, seeded["rejected"][0]], status="validated",
                reviewed_by="oncall:inc-42")
    plan = module("synap_proposals", args, check=True)
    assert plan["changed"] is True and [a["id"] for a in plan["actions"]] == chosen
    assert plan["actions"][0]["description"] == f"validate proposal {chosen[0]} (was pending)"
    assert plan["missing"] == [unknown]
    assert plan["skipped"] == [dict(id=seeded["rejected"][0], status="rejected")]
    assert {s for s, _, _ in status_of(pg, chosen).values()} == {"pending"}

    real = module("synap_proposals", args)
    assert real["changed"] is True and [a["previous_status"] for a in real["actions"]] == ["pending", "pending"]
    assert status_of(pg, chosen) == {i: ("validated", "oncall:inc-42", True) for i in chosen}
    assert status_of(pg, [seeded["rejected"][0]])[seeded["rejected"][0]][0] == "rejected"
    assert "validated 2 proposals" in real["msg"] and "1 id not found" in real["msg"]

    again = module("synap_proposals", args)
    assert again["changed"] is False and again["actions"] == []
    assert [u["id"] for u in again["unchanged"]] == sorted(chosen)


def test_reject_records_the_reason(pg, module, superuser_args, seeded):
    target = seeded["pending"][4]
    result = module("synap_proposals", dict(superuser_args, ids=[target], status="rejected", rejection_reason="spam"))
    assert result["changed"] is True
    with pg.connect() as conn:
        row = conn.execute("SELECT status, rejection_reason FROM proposals WHERE id = %s", (target,)).fetchone()
    assert row == ("rejected", "spam")


def test_locked_rows_fail_fast_and_change_nothing(pg, module, superuser_args, seeded):
    target = seeded["pending"][0]
    with blocking_chain(pg, target, waiters=0):
        result = module("synap_proposals", dict(superuser_args, ids=[target], status="validated"))
    assert result["failed"] is True and "lock timeout" in result["msg"] and "postgres_activity_info" in result["msg"]
    assert status_of(pg, [target])[target][0] == "pending"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ids": [], "status": "validated"}, "ids is empty"),
        ({"ids": ["not-a-uuid"], "status": "validated"}, "proposal id 'not-a-uuid' is not a UUID"),
        ({"ids": [str(uuid.uuid4())], "status": "approved"}, "value of status must be one of"),
        ({"status": "validated"}, "missing required arguments: ids"),
    ],
)
def test_bad_input_gets_one_line(module, superuser_args, args, message):
    result = module("synap_proposals", dict(superuser_args, **args))
    assert result["failed"] is True and message in result["msg"] and "\n" not in result["msg"]
