"""The lockbox's policy (PB-32): one set of test rows is evaluated once. Later
attempts are refused, citing the first evaluation, unless an unseal gives a new, non-empty
reason; unseals are recorded and every status counts them."""
from __future__ import annotations

from dataclasses import dataclass

from alchemist.errors import UserError


class Refused(UserError):
    """A second look at the test set without an unseal: the message cites the first one."""


class Tampered(Refused):
    """Copies of the ledger disagree, or one holds a line that is no event: refused."""


@dataclass
class Decision:
    opening: int                 # 1 for the first evaluation, 2 after one unseal, ...
    unseal: dict | None = None   # the unseal event to record before evaluating


def _keys(keys) -> tuple[str, ...] | None:
    return None if keys is None else (keys,) if isinstance(keys, str) else tuple(keys)


def mine(events: list[dict], keys) -> list[dict]:
    """This lockbox's events (any of its keys), each opening with its result attached: an
    opening is recorded before its evaluation runs and its result after (kind `result`)."""
    keys = _keys(keys)
    own = [e for e in events if keys is None or e.get("source_key") in keys]
    results = {(e.get("source_key"), e.get("opening")): e for e in own if e["kind"] == "result"}
    out = []
    for e in own:
        if e["kind"] == "evaluation" and not e.get("result"):
            done = results.get((e.get("source_key"), e.get("opening")))
            e = {**e, "result": (done or {}).get("result"), "result_file": (done or e).get("result_file")}
        if e["kind"] != "result":
            out.append(e)
    return out


def describe(event: dict) -> str:
    """One line citing an opening: number, time, first trial ids, test result (or none) and result file."""
    result = event.get("result") or {}
    where = event.get("result_file", "?")
    value = result.get("test_mean")
    shown = (f"{result.get('metric', 'metric')} {value:.4f}" if isinstance(value, float)
             else "no result recorded (it still counts: the opening was)")
    return (f"opening #{event['opening']} on {event['time']} of trials "
            f"{', '.join(event.get('trial_ids', [])[:5])} → {shown} ({where})")


def decide(events: list[dict], keys, unseal_reason: str | None,
           problems: list[str] = ()) -> Decision:
    """Allow the first evaluation of these test rows; refuse later ones unless newly unsealed;
    refuse anything while the copies of the ledger show tampering."""
    own = mine(events, keys)
    evaluations = [e for e in own if e["kind"] == "evaluation"]
    if problems:
        first = f"; first evaluation: {describe(evaluations[0])}" if evaluations else ""
        raise Tampered(f"the lockbox ledger was edited ({'; '.join(problems[:3])}) — refusing "
                       f"every opening until the copy is restored (it only ever grows){first}")
    unseals = [e for e in own if e["kind"] == "unseal"]
    if len(evaluations) <= len(unseals):            # never opened, or an unused unseal
        return Decision(opening=len(evaluations) + 1)
    reason = (unseal_reason or "").strip()
    first = evaluations[0]
    if not reason:
        raise Refused(
            f"the test set was already evaluated ({describe(first)}); "
            f"{len(evaluations)} opening(s) so far. PB-32: evaluate once, never tune on test "
            "results. To re-open it anyway, give a reason: --config unseal_reason=\"...\"")
    used = [u for u in unseals if u.get("reason") == reason]
    if used:
        raise Refused(f"the unseal reason {reason!r} was already used on {used[0]['time']}; "
                      f"each re-opening needs its own reason (first evaluation: {describe(first)})")
    unseal = {"kind": "unseal", "reason": reason, "opening": len(evaluations) + 1}
    return Decision(opening=len(evaluations) + 1, unseal=unseal)


def status(events: list[dict], keys=None) -> dict:
    """How often the test set was opened and why: shown in every report."""
    own = mine(events, keys)
    return {"openings": sum(e["kind"] == "evaluation" for e in own),
            "unseals": [{"time": e["time"], "reason": e["reason"]} for e in own if e["kind"] == "unseal"],
            "evaluations": [{"time": e["time"], "opening": e["opening"],
                             "result_file": e.get("result_file"), "result": e.get("result")}
                            for e in own if e["kind"] == "evaluation"]}
