"""The lockbox's policy (PB-32): the test set of one data source is evaluated once. Later
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


def describe(event: dict) -> str:
    result = event.get("result", {})
    where = event.get("result_file", "?")
    value = result.get("test_mean")
    shown = f"{result.get('metric', 'metric')} {value:.4f}" if isinstance(value, float) else "no result"
    return (f"opening #{event['opening']} on {event['time']} of trials "
            f"{', '.join(event.get('trial_ids', [])[:5])} → {shown} ({where})")


def decide(events: list[dict], key: str, unseal_reason: str | None,
           problems: list[str] = ()) -> Decision:
    """Allow the first evaluation of this source; refuse later ones unless newly unsealed;
    refuse anything while the copies of the ledger show tampering."""
    mine = [e for e in events if e.get("source_key") == key]
    evaluations = [e for e in mine if e["kind"] == "evaluation"]
    if problems:
        first = f"; first evaluation: {describe(evaluations[0])}" if evaluations else ""
        raise Tampered(f"the lockbox ledger was edited ({'; '.join(problems[:3])}) — refusing "
                       f"every opening until the copy is restored (it only ever grows){first}")
    unseals = [e for e in mine if e["kind"] == "unseal"]
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


def status(events: list[dict], key: str | None = None) -> dict:
    """How often the test set was opened and why: shown in every report."""
    mine = [e for e in events if key is None or e.get("source_key") == key]
    return {"openings": sum(e["kind"] == "evaluation" for e in mine),
            "unseals": [{"time": e["time"], "reason": e["reason"]} for e in mine if e["kind"] == "unseal"],
            "evaluations": [{"time": e["time"], "opening": e["opening"],
                             "result_file": e.get("result_file"), "result": e.get("result")}
                            for e in mine if e["kind"] == "evaluation"]}


def format_status(state: dict) -> str:
    lines = [f"lockbox: the test set has been opened {state['openings']} time(s)"]
    for ev in state["evaluations"]:
        r = ev.get("result") or {}
        lines.append(f"  opening #{ev['opening']} on {ev['time']}: {r.get('metric')} "
                     f"{r.get('test_mean')} → {ev['result_file']}")
    lines += [f"  unsealed on {u['time']}: {u['reason']}" for u in state["unseals"]]
    lines += [f"  TAMPERING: {p} — every opening is refused" for p in state.get("tampering", [])]
    return "\n".join(lines) + "\n"
