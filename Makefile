VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench clean

setup:
	@bash scripts/setup.sh

run: setup
	$(BIN)/mri-pipeline up --demo

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

test: setup lint
	$(BIN)/pytest

# One table of every bench's figures; e.g. make bench BENCH_ARGS=--quick for a smoke run.
bench: setup
	$(BIN)/python bench/report.py --markdown var/bench-report.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
