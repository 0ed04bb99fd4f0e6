# Local development entry points. Each script starts PostgreSQL, Redis and the moto server
# under var/ when needed and stops what it started on exit (see scripts/lib.sh).
#   make test ARGS="-k onboarding -x"     extra pytest arguments
#   make bench ARGS="sync --quick"        one benchmark, with its arguments

SHELL := /bin/bash
ARGS ?=

.PHONY: run test lint bench clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

lint:
	bash scripts/lint.sh

bench:
	bash scripts/bench.sh $(ARGS)

# Stops PostgreSQL/Redis still running from var/ (after a hard kill) before deleting it.
clean:
	bash -c 'source scripts/lib.sh && stop_var_services'
	rm -rf var
