"""Judges that label what active learning selects, behind one interface, each counting its cost (algorithms.md §3.4).

A judge returns, per trajectory, its first erroneous step (0-based), -1 when every step is right, or None when
its answer could not be used (the sample is dropped and counted). Labels follow ActPRM: steps before the error
are 1, the error step 0, the trajectory truncated after it (`hard_labels`).

* `ExactJudge`: the testbed's exact step checker — the ideal judge, free.
* `MCJudge`: SCAN's MC labeller from this pipeline (sequential rollouts, early stop at the first c_t = 0); its
  rollout tokens are its cost. A response whose final answer is right is judged all-correct with no rollouts.
* `CritiqueJudge`: an LLM critique through any generation engine, with the ProcessBench-style prompt
  (`<paragraph_i>`, stop at the first wrong paragraph, `<conclusion>`) and robust parsing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

from prm_core.domains.base import Domain, ExactDomain, Problem, join_steps
from prm_core.generation.sampling import Engine, SamplingSpec
from prm_core.labels.first_error import search_sequential
from prm_core.labels.mc_value import Response


@dataclass(frozen=True)
class Trajectory:
    response_id: str
    problem: Problem
    steps: list[str]


@dataclass
class JudgeCost:
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    dropped: int = 0  # answers that could not be used


@dataclass
class ExactJudge:
    domain: ExactDomain
    name: str = "exact"
    cost: JudgeCost = field(default_factory=JudgeCost)

    def first_errors(self, trajectories: list[Trajectory]) -> list[int | None]:
        start = time.perf_counter()
        out = [self.domain.label_steps(t.problem, join_steps(self.domain, t.steps)).first_error for t in trajectories]
        self.cost.calls += len(trajectories)
        self.cost.seconds += time.perf_counter() - start
        return out


@dataclass
class MCJudge:
    domain: Domain
    engine: Engine
    spec: SamplingSpec
    k: int = 8
    name: str = "mc"
    cost: JudgeCost = field(default_factory=JudgeCost)

    def first_errors(self, trajectories: list[Trajectory]) -> list[int | None]:
        start = time.perf_counter()
        graded = [Response(t.response_id, t.problem, t.steps,
                           self.domain.grade(self.domain.extract_answer(join_steps(self.domain, t.steps)), t.problem.answer))
                  for t in trajectories]
        wrong = [r for r in graded if not r.correct]
        searched, c = search_sequential(self.domain, self.engine, wrong, self.k, replace(self.spec, seed=self.spec.seed + self.cost.calls)) \
            if wrong else ([], None)
        found = {sv.response.response_id: sv.first_zero for sv in searched}
        out: list[int | None] = []
        for r in graded:
            t_e = -1 if r.correct else found[r.response_id]
            out.append(None if (not r.correct and t_e < 0) else t_e)  # no zero found: SCAN drops it
        self.cost.calls += len(trajectories)
        self.cost.tokens += c.tokens if c else 0
        self.cost.dropped += sum(v is None for v in out)
        self.cost.seconds += time.perf_counter() - start
        return out


def scan_judge(domain: Domain, engine: Engine, seed: int = 7) -> MCJudge:
    """SCAN's MC labeller as the judge, at the MC stage's rollout settings and k (`labels.mc_estimates`)."""
    from prm_core.labels.mc_estimates import ROLLOUT_SPEC, AnnotationConfig

    return MCJudge(domain, engine, replace(ROLLOUT_SPEC, seed=seed), k=AnnotationConfig.k)


CRITIQUE_PROMPT = """The following is a math problem and a solution (split into paragraphs, enclosed with tags and indexed from 1):

<math_problem>
{problem}
</math_problem>

{paragraphs}

Review the solution paragraph by paragraph. For each paragraph i write your analysis in <analysis_i>...</analysis_i>.
Stop at the first paragraph that contains an error. Finish with <conclusion>Correct</conclusion> if every paragraph
is correct, otherwise <conclusion>Incorrect</conclusion>.
"""

_ANALYSIS = re.compile(r"<analysis_(\d+)>", re.IGNORECASE)
_CONCLUSION = re.compile(r"<conclusion>\s*(.*?)\s*</conclusion>", re.IGNORECASE | re.DOTALL)


def critique_prompt(problem: str, steps: list[str]) -> str:
    paragraphs = "\n\n".join(f"<paragraph_{i}>\n{s}\n</paragraph_{i}>" for i, s in enumerate(steps, 1))
    return CRITIQUE_PROMPT.format(problem=problem, paragraphs=paragraphs)


def parse_critique(text: str, n_steps: int) -> int | None:
    """The first error a critique names (0-based), -1 for "Correct", None when unusable: no conclusion, an
    "Incorrect" with no analysis, or an analysis index outside the solution."""
    conclusion = _CONCLUSION.findall(text)
    if not conclusion:
        return None
    verdict = conclusion[-1].strip().lower()
    if verdict.startswith("correct"):
        return -1
    if not verdict.startswith("incorrect"):
        return None
    indices = [int(i) for i in _ANALYSIS.findall(text)]
    if not indices or not 1 <= indices[-1] <= n_steps:
        return None
    return indices[-1] - 1  # the last analysed paragraph is the first wrong one


@dataclass
class CritiqueJudge:
    engine: Engine
    spec: SamplingSpec = field(default_factory=lambda: SamplingSpec(temperature=0.5, top_p=0.95, max_new_tokens=8192))
    name: str = "critique"
    cost: JudgeCost = field(default_factory=JudgeCost)

    def first_errors(self, trajectories: list[Trajectory]) -> list[int | None]:
        start = time.perf_counter()
        prompts = [critique_prompt(t.problem.question, t.steps) for t in trajectories]
        samples = self.engine.generate(prompts, replace(self.spec, n=1))
        out = [parse_critique(row[0].text, len(t.steps)) for row, t in zip(samples, trajectories)]
        self.cost.calls += len(trajectories)
        self.cost.tokens += sum(row[0].num_tokens for row in samples)
        self.cost.dropped += sum(v is None for v in out)
        self.cost.seconds += time.perf_counter() - start
        return out


def hard_labels(first_error: int, n_steps: int) -> list[float]:
    """[1]·k + [0] up to the first error (truncated after it), or all 1s."""
    return [1.0] * n_steps if first_error < 0 else [1.0] * first_error + [0.0]
