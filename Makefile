# The two quick-start commands (README): `make run` and `make test`.
# `make docker-test` runs only the Docker deployment test (also part of `make test`).
.PHONY: run test docker-test test-py312

run:
	@scripts/bootstrap.sh run
	.venv/bin/kovr serve

test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m pytest

docker-test:
	@scripts/bootstrap.sh test
	.venv/bin/python -m tests.docker_stack.run

# The unit suites on Python 3.12 with transformers 5 (a second interpreter; CI runs `make test`).
test-py312:
	@scripts/test-py312.sh
