# The two quick-start commands (README): `make run` and `make test`.
# `make docker-test` runs only the Docker deployment test (also part of `make test`).
.PHONY: run test docker-test

run:
	@scripts/bootstrap.sh run
	.venv/bin/kovr serve

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest

docker-test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m tests.docker_stack.run
