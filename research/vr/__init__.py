"""The visual-reasoning proof: a synthetic Korean scene set (scenes, questions, Korean particles),
the recipes that train a tiny align model against a text-only baseline (proof), and their drivers
(bench_vr, bench_nouns). See docs/visual-reasoning.md and docs/lab/."""
