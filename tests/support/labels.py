"""Hand-made MC cases: the arith domain, a rollout spec, responses by hand, and a scripted set of three questions."""

from prm_core.domains.arith import ArithDomain
from prm_core.domains.base import Problem
from prm_core.generation.sampling import SamplingSpec
from prm_core.labels.mc_value import Response
from tests.scripted import ScriptedEngine

D = ArithDomain()
SPEC = SamplingSpec(temperature=0.7, top_p=0.8, max_new_tokens=32)


def response(rid, question, n_steps, correct, gold="5"):
    steps = [f"step {i}: 1 + 1 = 2" for i in range(n_steps - 1)] + [f"Answer: {gold if correct else 99}"]
    return Response(rid, Problem(rid.split("/")[0], question, gold), steps, correct)


def scripted_set():
    # problem a: SC 1.0, two responses (one correct); b: SC 0.5 (filtered by SCAN); c: SC 0 (filtered)
    qa, qb, qc = "Tom has 4 pens. How many now?", "Sam has 4 pens. How many now?", "Max has 4 pens. How many now?"
    script = {qa: ("5", [1.0, 0.5, 0.0, 0.0]), qb: ("5", [0.25, 0.0, 0.0, 0.0]), qc: ("5", [0.0, 0.0, 0.0, 0.0])}
    responses = [
        response("a/r0", qa, 4, True), response("a/r1", qa, 4, False),
        response("b/r0", qb, 4, False), response("c/r0", qc, 4, False),
    ]
    sc = {"a": 1.0, "b": 0.5, "c": 0.0}
    return ScriptedEngine(script), responses, sc
