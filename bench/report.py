"""Run every bench in turn and print one table of their headline figures (``make bench``).

Each bench runs as a subprocess of this Python with ``--json PATH`` and writes its headline
figures there (``common.write_figures``): what was measured, its value and unit, what it
is compared with (the reference, in words with its own value) and the ratio, and its
target with PASS/MISS where the bench has one. Ratios are the value divided by the
reference's value unless the reference says otherwise. A bench's full output goes to
``LOGS/NAME.log`` beside its ``LOGS/NAME.json``.

The table is printed with the date, the machine's CPU cores, the Python it ran on and the
load average (other work on the machine shows in the figures); ``--markdown PATH`` also
writes it as Markdown (for the README). A bench that exits non-zero is named after the
table with the end of its log; the others' rows are still shown (and its own, when it
wrote any: a bench exits 1 on a failed request but still reports), and this script then
exits 1.

    .venv/bin/python bench/report.py                                  # every bench, full sizes
    .venv/bin/python bench/report.py --quick                          # smoke run
    .venv/bin/python bench/report.py --only mpps --only qc --verbose  # two, their output too
    .venv/bin/python bench/report.py --markdown var/bench-report.md
    .venv/bin/python bench/report.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCHES = ("mwl_query", "mpps", "ingest", "qc", "routing", "load")
COLUMNS = ("bench", "figure", "value", "unit", "reference", "ratio", "target", "verdict")
NUMERIC = ("value", "ratio")
LOG_TAIL = 8


@dataclass
class Run:
    """One bench's run: its exit status, how long it took, the rows it wrote."""

    name: str
    log: Path
    returncode: int = 0
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""  # why this run counts as failed; empty when it did not

    @property
    def failed(self) -> bool:
        return bool(self.problem)


@dataclass(frozen=True)
class Machine:
    """Where and when the benches ran."""

    started: datetime
    finished: datetime
    cores: int
    cpu: str
    python: str
    database: str
    sizes: str
    load: tuple[float, float]  # 1-minute load average when the first bench started, at the end

    def lines(self) -> list[str]:
        day = self.started.strftime("%Y-%m-%d")
        until = self.finished.strftime("%H:%M")
        if self.finished.date() != self.started.date():
            until = self.finished.strftime("%Y-%m-%d %H:%M")
        return [
            f"taken {day} {self.started:%H:%M}-{until} {self.started:%Z}",
            f"machine: {self.cores} CPU cores (os.cpu_count()), {self.cpu}; "
            f"Python {self.python}; database {self.database}; {self.sizes}; load average "
            f"{self.load[0]:.2f} at the start, {self.load[1]:.2f} at the end",
        ]


# ---------------------------------------------------------------- running the benches


def command_for(name: str, json_path: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(BENCH / f"{name}.py"), "--json", str(json_path)]
    if args.quick:
        command.append("--quick")
    if args.database_url:
        command += ["--database-url", args.database_url]
    return command


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows a bench wrote; ValueError when the file is not a list of rows."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("not a list of rows")
    for row in rows:
        missing = [column for column in COLUMNS if column not in row]
        if missing:
            raise ValueError(f"a row without {', '.join(missing)}")
    return rows


def run_bench(name: str, args: argparse.Namespace, number: str) -> Run:
    """The bench as a subprocess, its output into its log (and here with ``--verbose``)."""
    json_path = args.logs / f"{name}.json"
    json_path.unlink(missing_ok=True)  # a stale file must not pass for this run's figures
    run = Run(name, args.logs / f"{name}.log")
    title = f"{number} {name}"
    print(f"{title} ...", end="\n" if args.verbose else " ", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with (
        run.log.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            command_for(name, json_path, args),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as process,
    ):
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            log.write(line)
            if args.verbose:
                sys.stdout.write(line)
                sys.stdout.flush()
    run.returncode = process.returncode
    run.seconds = time.monotonic() - started
    if json_path.exists():
        try:
            run.rows = read_rows(json_path)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            run.problem = f"unreadable figures in {json_path}: {exc}"
    if run.returncode != 0:
        run.problem = "; ".join(filter(None, [f"exit status {run.returncode}", run.problem]))
    elif not run.rows and not run.problem:
        run.problem = "wrote no figures"
    outcome = (
        f"{f'FAILED ({run.problem})' if run.failed else 'done'} in {run.seconds:.0f} s, "
        f"{len(run.rows)} figures; log {relative(run.log)}"
    )
    print(f"{title}: {outcome}" if args.verbose else outcome, flush=True)
    return run


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def log_tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


# ---------------------------------------------------------------- the table


def number(value: Any) -> str:
    """Three significant figures, thousands separated; counts as they are."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:#.3g}"


def cells(row: dict[str, Any]) -> list[str]:
    texts = []
    for column in COLUMNS:
        value = row.get(column)
        if column == "value":
            texts.append(number(value))
        elif column == "ratio":
            texts.append("-" if value is None else f"{number(value)}x")
        else:
            texts.append("-" if value is None else str(value))
    return texts


def fixed_width(rows: Sequence[dict[str, Any]]) -> list[str]:
    table = [list(COLUMNS), *(cells(row) for row in rows)]
    widths = [max(len(line[k]) for line in table) for k in range(len(COLUMNS))]

    def line(texts: Sequence[str]) -> str:
        return "  ".join(
            text.rjust(width) if column in NUMERIC else text.ljust(width)
            for column, text, width in zip(COLUMNS, texts, widths, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(table[0]), rule, *(line(texts) for texts in table[1:])]


def markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rows: Sequence[dict[str, Any]], machine: Machine, runs: Sequence[Run]) -> str:
    taken, where = machine.lines()
    lines = [f"Benchmarks (`make bench`), {taken}; {where}.", "", f"{NOTE}.", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if column in NUMERIC else "---" for column in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(markdown_cell(text) for text in cells(row)) + " |")
    failed = [run for run in runs if run.failed]
    if failed:
        lines += [
            "",
            "Failed to run: " + "; ".join(f"{run.name} ({run.problem})" for run in failed),
        ]
    return "\n".join(lines) + "\n"


NOTE = (
    "ratio = value / the reference's value (unless the reference says otherwise); "
    "PASS/MISS against the bench's target where it has one"
)


def machine_cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def database_of(url: str) -> str:
    return url.split(":", 1)[0] if url else "sqlite (temporary files)"


# ---------------------------------------------------------------- entry


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default="",
        help="passed to every bench (default: their temporary SQLite files); mwl_query empties "
        "the worklist tables of that database, the others use a fresh schema",
    )
    parser.add_argument("--quick", action="store_true", help="each bench's smoke-run sizes")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table there")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHES,
        metavar="NAME",
        help=f"run only this bench (repeatable): {', '.join(BENCHES)}",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=ROOT / "var/bench",
        metavar="DIR",
        help="each bench's output and figures, NAME.log and NAME.json (default var/bench)",
    )
    parser.add_argument("--verbose", action="store_true", help="show each bench's output too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.logs = args.logs.resolve()  # the benches run from the repository's root
    args.logs.mkdir(parents=True, exist_ok=True)
    names = [name for name in BENCHES if not args.only or name in args.only]
    started, load = datetime.now().astimezone(), os.getloadavg()[0]
    print(
        f"running {len(names)} bench{'' if len(names) == 1 else 'es'} "
        f"({'quick' if args.quick else 'full sizes'}), "
        f"{started:%Y-%m-%d %H:%M %Z}"
    )
    runs = [run_bench(name, args, f"[{k}/{len(names)}]") for k, name in enumerate(names, 1)]
    machine = Machine(
        started=started,
        finished=datetime.now().astimezone(),
        cores=os.cpu_count() or 1,
        cpu=machine_cpu(),
        python=platform.python_version(),
        database=database_of(args.database_url),
        sizes="quick (smoke-run sizes)" if args.quick else "full sizes",
        load=(load, os.getloadavg()[0]),
    )
    rows = [row for run in runs for row in run.rows]

    print()
    print("\n".join(machine.lines()))
    print(NOTE)
    print()
    print("\n".join(fixed_width(rows)))
    failed = [run for run in runs if run.failed]
    if failed:
        print(f"\nfailed to run: {', '.join(run.name for run in failed)}")
        for run in failed:
            print(f"  {run.name}: {run.problem}; last lines of {relative(run.log)}:")
            for line in log_tail(run.log):
                print(f"    {line}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows, machine, runs), encoding="utf-8")
        print(f"\nMarkdown table: {relative(args.markdown)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
