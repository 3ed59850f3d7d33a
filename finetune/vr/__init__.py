"""Vision-align (visual reasoning) training: synthetic data, stages 1 and 2, evaluation."""
