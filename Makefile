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

bench: setup
	$(BIN)/python bench/mwl_query.py
	$(BIN)/python bench/mpps.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/qc.py
	$(BIN)/python bench/routing.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
