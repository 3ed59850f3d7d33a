# The two quick-start commands (README): `make run` and `make test`.
.PHONY: run test test-py312

run:
	@scripts/bootstrap.sh run
	.venv/bin/kovr serve

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest

# The unit suites on Python 3.12 with transformers 5 (a second interpreter; CI runs `make test`).
test-py312:
	@scripts/test-py312.sh
