"""A hand-made ActPRM pool: real arith trajectories (every other one wrong at its last step) and random step inputs."""

import torch

from prm_core.active.judges import Trajectory
from prm_core.domains.arith import ArithDomain


def arith_pool(n: int = 6) -> tuple[ArithDomain, list[Trajectory], list[torch.Tensor]]:
    d = ArithDomain()
    trajs = []
    for i, problem in enumerate(d.problems(n, seed=11)):
        good = d.split_steps(d.reference_solution(problem))
        trajs.append(Trajectory(f"r{i}", problem, good if i % 2 == 0 else good[:-1] + ["Answer: -12345"]))
    torch.manual_seed(0)
    return d, trajs, [torch.randn(len(t.steps), 5) for t in trajs]
