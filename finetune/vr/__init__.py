"""Vision-align (visual reasoning) training: VQA/caption data, stages 1 and 2, evaluation."""
