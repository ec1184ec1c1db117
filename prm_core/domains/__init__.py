"""Domains: what a problem is and how its answers and steps are checked — the arith testbed (exact step truth),
real data sets graded by math-verify, the testbed written as GSM8K-style files (arith_text), and problem pools (seeded
shards, files with quarantine).
May import: lineage, runtime."""

from prm_core.domains.base import Domain, ExactDomain, Problem, StepVerdict, has_exact_labeller

__all__ = ["Domain", "ExactDomain", "Problem", "StepVerdict", "has_exact_labeller", "get_domain"]


def get_domain(name: str, **kwargs) -> Domain:
    """The domain registered under `name` (`arith`, `gsm8k`, `math`)."""
    if name == "arith":
        from prm_core.domains.arith import ArithConfig, ArithDomain

        return ArithDomain(ArithConfig(**kwargs))
    if name in ("gsm8k", "math", "text"):
        from prm_core.domains.textmath import TextMathDomain

        return TextMathDomain(name=name, **kwargs)
    raise ValueError(f"unknown domain {name!r}; known: arith, gsm8k, math, text")
