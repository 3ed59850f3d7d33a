# The two quick-start commands (README): `make run` and `make test`.
.PHONY: run test

run:
	@scripts/bootstrap.sh run
	.venv/bin/kovr serve

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest
