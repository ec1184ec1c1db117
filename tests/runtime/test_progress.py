"""Progress bars say what they work for: the unit of work (`progress_scope`) they are opened in."""

from prm_core.runtime.progress import progress_bar, progress_scope


def test_a_bar_is_labelled_with_its_scope_and_only_inside_it(monkeypatch):
    monkeypatch.setenv("PRM_PROGRESS", "1")  # a disabled bar keeps no label
    with progress_scope("mc_estimates_chunks/arith-0001/vanilla-0003"):
        with progress_bar(4, "generate (transformers)") as bar:
            assert bar.desc.startswith("mc_estimates_chunks/arith-0001/vanilla-0003: generate (transformers)")
        with progress_scope("rollouts/arith-0000"):  # the innermost scope names the bar
            with progress_bar(4, "generate") as bar:
                assert bar.desc.startswith("rollouts/arith-0000: generate")
    with progress_bar(4, "train policy") as bar:
        assert bar.desc.startswith("train policy")
