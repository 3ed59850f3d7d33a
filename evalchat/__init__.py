"""`kovr eval-chat`: answers of several chat models on one Korean prompt set, judged side by side.

Layers: ``prompts`` (the set) → ``targets`` (where answers come from) → ``answers`` (cached,
resumable generation + judge-free metrics from :mod:`kovr.chat_metrics`) → ``judge`` (absolute and
pairwise, strict JSON) → ``report`` (report.md, report.json, report.png). ``run`` ties them together.
This package may import model_server (to serve a local folder); finetune never imports it.
"""
