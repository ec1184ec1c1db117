"""What `prm run` says while a run goes: one line when each of its steps starts and one when it ends, with what
it cost, read from the run's event log (the same events the Dagster UI shows), never from the worker's output.

    prm [1/3 default_pipeline] run 577ca64f-…: shards arith-0000..arith-0001
    prm [1/3 default_pipeline] mc_estimates: started
    prm [1/3 default_pipeline] mc_estimates: done in 78.2 s (2 shards, 1,234,567 tokens, 10,240 rollouts)
"""

from __future__ import annotations

import sys
import threading

OUTPUT = threading.Lock()  # stage lines and the forwarded worker output share stderr


def say(line: str, out=None) -> None:
    """One whole line on stderr (after a progress bar's carriage return, it starts a line of its own)."""
    out = out or sys.stderr
    with OUTPUT:
        out.write(("\r\x1b[K" if out.isatty() else "") + line + "\n")
        out.flush()


def _number(metadata: dict, key: str) -> float:
    value = metadata.get(key)
    return float(getattr(value, "value", value) or 0) if value is not None else 0.0


def cost_words(seconds: float, partitions: int, tokens: float, rollouts: float, unit: str = "partition") -> str:
    """`78.2 s (2 shards, 1,234,567 tokens, 10,240 rollouts)`: what a step cost, naming only what it spent."""
    parts = [f"{partitions} {unit}{'s' if partitions != 1 else ''}"] if partitions > 1 else []
    parts += [f"{int(tokens):,} tokens"] if tokens else []
    parts += [f"{int(rollouts):,} rollouts"] if rollouts else []
    return f"{seconds:.1f} s" + (f" ({', '.join(parts)})" if parts else "")


class StageLines:
    """Follows one run's event log (`poll`, called while `prm` waits) and says each step's start and end."""

    def __init__(self, instance, run_id: str, label: str, partitions: str = "", unit: str = "partition", out=None):
        self.instance, self.run_id, self.label, self.unit, self.out = instance, run_id, label, unit, out
        say(f"prm [{label}] run {run_id}" + (f": {partitions}" if partitions else ""), out)
        self.cursor = None
        self.started: dict[str, float] = {}
        self.spent: dict[str, list[float]] = {}  # step -> [partitions, tokens, rollouts]

    def poll(self) -> None:
        import dagster as dg

        kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
                 dg.DagsterEventType.ASSET_MATERIALIZATION}
        try:
            found = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, of_type=kinds)
        except Exception:  # a read that fails (the event log busy) is tried again at the next poll: these lines are
            return  # a view of the run, never its outcome (`wait` and `failures` read that)
        self.cursor = found.cursor
        for record in found.records:
            self._said(record.event_log_entry)

    def _said(self, entry) -> None:
        import dagster as dg

        event, step = entry.dagster_event, entry.step_key or "run"
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.started[step] = entry.timestamp
            say(f"prm [{self.label}] {step}: started", self.out)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            metadata = event.event_specific_data.materialization.metadata
            spent = self.spent.setdefault(step, [0, 0.0, 0.0])
            spent[0] += 1
            spent[1] += _number(metadata, "cost/generated_tokens")
            spent[2] += _number(metadata, "cost/rollouts")
        else:
            seconds = entry.timestamp - self.started.get(step, entry.timestamp)
            partitions, tokens, rollouts = self.spent.get(step, [0, 0.0, 0.0])
            done = "done in" if kind == dg.DagsterEventType.STEP_SUCCESS else "FAILED after"
            spent = cost_words(seconds, int(partitions), tokens, rollouts, self.unit)
            say(f"prm [{self.label}] {step}: {done} {spent}", self.out)
