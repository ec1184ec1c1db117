"""The PRM training corpus: hard or soft targets per method, hard negatives from trusted steps."""


def test_hard_negative_changes_a_trusted_result_and_cuts_there():
    import random

    from prm_core.prm.hard_negatives import hard_negative, perturb_result

    rng = random.Random(0)
    steps = ["finds 2 more: 3 + 2 = 5", "loses 1: 5 - 1 = 4", "Answer: 4"]
    out = hard_negative(steps, [1.0, 0.0, 0.0], rng)  # only step 0 is trusted
    assert out is not None and out[1] == [0.0] and out[0][0] != steps[0] and out[0][0].startswith("finds 2 more: 3 + 2 = ")
    assert perturb_result("no numbers here", rng) is None
    assert hard_negative(steps, [0.0, 0.0, 0.0], rng) is None


def test_corpus_uses_hard_targets_for_vanilla_and_soft_for_scan():
    import polars as pl

    from prm_core.labels.denoised_labels import LABEL_SCHEMA
    from prm_core.prm.corpus import CorpusConfig, build_corpus

    def row(method):
        return (method, f"{method}-r", "p", "s0", ["a: 1 + 1 = 2", "b: 2 + 1 = 4"], [0.25, 0.0], [1, 0], 1, False, 0.5, 8)

    labels = pl.DataFrame([row("vanilla"), row("scan")], schema=LABEL_SCHEMA, orient="row")
    corpus, counts = build_corpus(labels, {"p": "q\n"}, CorpusConfig(hard_negatives=1))
    by = {(r["method"], r["source"]): r["targets"] for r in corpus.iter_rows(named=True)}
    assert by[("vanilla", "label")] == [1.0, 0.0] and by[("scan", "label")] == [0.25, 0.0]
    assert by[("vanilla", "hard_negative")] == [0.0]  # its trusted step 0, result changed
    assert ("scan", "hard_negative") not in by  # 0.25 < min_label: nothing trusted
    assert counts["labelled"] == 2 and counts["hard_negatives"] == 1
