"""The ``ntklab`` command line: verify, run, presets, status, report, export.

Each command parses and validates its flags and calls the library; errors that a user can
fix are printed as one line (``error: ...``, :class:`~ntklab.cli_errors.UserError`) with a
non-zero exit code. ``verify`` is defined in :mod:`ntklab.cli_verify`, the others here.
"""

from __future__ import annotations

import sys

import click

from .cli_errors import UserError
from .cli_verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ntklab")
def main() -> None:
    """ntklab: test neural tangent kernel theory against real trained networks."""


main.add_command(verify)


# ---- run / presets / status ---------------------------------------------------
@main.command("run")
@click.argument("source", metavar="CONFIG_OR_PRESET")
@click.option(
    "--trials", type=int, default=None, help="Trials per sweep point (overrides study.trials)."
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=str),
    default=None,
    help="Run directory [default: runs/<study name>]; rerunning the same command there resumes.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Local worker processes [default: all cores]; threads per worker = cores // workers.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="torch and BLAS threads per worker [default: cores // workers; on Dask: the worker's].",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Send the trials to this existing Dask scheduler (e.g. a dask-jobqueue SLURM cluster).",
)
@click.option(
    "--scheduler-timeout",
    "scheduler_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the --scheduler to answer.",
)
@click.option(
    "--stack-trials",
    "stack_trials",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Whole trials per task, their networks of one architecture and schedule trained in "
    "one stacked run [default: 8 when networks run on CUDA, else 1; N > 1 stacks on a CPU too].",
)
@click.option(
    "--dask-local",
    "dask_local",
    type=int,
    default=None,
    metavar="N",
    help="Start a local Dask cluster with N worker processes.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set methods.NN1.width=256 --set 'methods.*.epochs=100' "
    "--set data.n_train=700 (repeatable; values are TOML).",
)
@click.option(
    "--device", default=None, help="Device for the networks [default: cuda if available, else cpu]."
)
@click.option(
    "--only",
    "only",
    default=None,
    metavar="NAME,NAME,...",
    help="Run only these methods of the config, into a run directory of their own "
    "[default: runs/<study name>-only-<names>]; kernel methods keep what they take from "
    "their network method, so the numbers equal those of the full run.",
)
def run_cmd(
    source, trials, out, workers, threads, scheduler, scheduler_timeout, stack_trials,
    dask_local, overrides, device, only,
):  # fmt: skip
    """Run (or resume) the study CONFIG_OR_PRESET (a preset name or a TOML file)."""
    import os
    from pathlib import Path

    local_workers = workers if workers is not None else (os.cpu_count() or 1)
    if local_workers > 1 and scheduler is None and dask_local is None:
        from .execution.forkserver import start_pool_server

        start_pool_server()  # a pool's workers fork from it; it imports torch meanwhile

    from .config import ConfigError, load_config
    from .execution import ExecutionError, Interrupted, run_study
    from .store import StoreError

    if trials is not None and trials < 1:
        raise UserError(f"--trials must be a positive integer; got {trials}")
    _check_source(source)
    only_names = None
    if only is not None:
        only_names = [n.strip() for n in only.split(",") if n.strip()]
        if not only_names:
            raise UserError(
                f"--only takes method names separated by commas, e.g. NN1,NTK-NN1-T; got {only!r}"
            )
    try:
        plan = load_config(source, overrides=list(overrides), trials=trials, only=only_names)
        if device is not None:
            from .networks import resolve_device

            device = str(resolve_device(device))
        out = out or str(Path("runs") / plan.default_dir)
        summary = run_study(
            plan,
            out,
            workers=workers,
            threads=threads,
            scheduler=scheduler,
            dask_local=dask_local,
            device=device,
            stack_trials=stack_trials,
            scheduler_timeout=scheduler_timeout,
            echo=click.echo,
        )
    except (ConfigError, ExecutionError, StoreError, ValueError) as exc:
        raise UserError(str(exc)) from None
    except Interrupted as exc:
        what = "Ctrl-C" if exc.signal == "SIGINT" else exc.signal
        stored = (
            f"{exc.stored} finished trial(s) are"
            if exc.stored is not None
            else "finished trials are"
        )
        raise UserError(
            f"interrupted by {what}: {stored} stored in {out}; rerun the same command to resume"
        ) from None
    except KeyboardInterrupt:
        raise UserError(
            f"interrupted; finished trials are stored in {out}: rerun the same command to resume"
        ) from None
    methods_failed = (
        f" ({summary.failed_methods} failed method run(s))" if summary.failed_methods else ""
    )
    click.echo(
        f"results: {Path(out) / 'results.sqlite'} ({summary.done} trials run now, "
        f"{summary.skipped} before, {summary.failed} failed{methods_failed}; "
        f"{summary.wall_time:.0f}s)"
    )
    click.echo(f"report:  ntklab report {out}")
    if summary.failed:
        for line in summary.failures[:5]:
            click.echo(f"failed: {line}", err=True)
        named = "; ".join(line.split(":", 1)[0] for line in summary.failures[:3]) + (
            "; ..." if len(summary.failures) > 3 else ""
        )
        if summary.memory_errors:
            advice = (
                "out of memory: rerunning unchanged will fail again; use fewer --workers, "
                "smaller networks (width, batch_size) or a larger machine, then rerun the same "
                "command to retry exactly the failed ones"
            )
        else:
            advice = "rerun the same command to retry exactly the failed ones"
        raise UserError(
            f"{summary.failed} trial(s) failed ({named}); {advice} (see ntklab status {out})"
        )


def _check_source(source: str) -> None:
    """A directory given as the config: say what it is (a run or not) and what to pass."""
    from pathlib import Path

    from .config import preset_names
    from .store import RunStore, StoreError, is_run_dir

    path = Path(source)
    if not path.is_dir() or source in preset_names():
        return
    if is_run_dir(path):
        try:
            with RunStore.open(path) as store:
                origin = str(store.meta().get("source") or "")
        except StoreError:
            origin = ""
        origin = origin.removeprefix("preset ") or "CONFIG_OR_PRESET"
        raise UserError(
            f"{source} is a run directory, not a config; to resume it, rerun the command that "
            f"made it (ntklab run {origin} --out {source}, with the same --set options); "
            f"to see it: ntklab status {source}"
        )
    raise UserError(
        f"{source} is a directory, not a config file or preset; pass a .toml file or a preset "
        f"name (see ntklab presets), and --out {source} to write the run there"
    )


@main.command("presets")
def presets_cmd():
    """List the presets shipped with ntklab."""
    from .config import ConfigError, list_presets

    try:
        rows = list_presets()
    except ConfigError as exc:  # pragma: no cover - presets are tested
        raise UserError(str(exc)) from None
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        points = f" x {r['points']} sweep points" if r["points"] > 1 else ""
        click.echo(
            f"{r['name']:<{width}}  {r['trials']} trials{points}, {r['methods']} methods: "
            f"{r['description']}"
        )


@main.command("status")
@click.argument("run_dir", type=click.Path(path_type=str))
def status_cmd(run_dir):
    """Progress of the run in RUN_DIR: trials done/failed/total, per-method counts, wall time."""
    from .execution import run_status
    from .store import StoreError

    try:
        st = run_status(run_dir)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"{run_dir}: {st['name']} ({st['points']} point(s) x {st['trials_per_point']} trials)"
    )
    beyond = f"; {st['beyond']} more stored beyond it" if st["beyond"] else ""
    click.echo(
        f"trials: {st['done']} done, {st['failed']} failed, {st['total']} total "
        f"({st['total'] - st['done']} to run){beyond}"
    )
    if st["failed_methods"]:
        click.echo(
            f"failed methods: {st['failed_methods']} (trial, method) pair(s) in done trials; "
            "rerun the same command to retry them"
        )
    click.echo(
        f"wall time: {st['wall_time_sum']:.1f}s in done trials ({st['wall_time_mean']:.1f}s per trial)"
    )
    for m in st["methods"]:
        err = f", {m['errors']} errors" if m["errors"] else ""
        click.echo(f"  {m['method']:<10} {m['rmse_rows']} results{err}")


# ---- report -------------------------------------------------------------------
def _parse_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UserError(
            f"--pair takes two method names separated by a comma (e.g. NN1,NTKB1); got {text!r}"
        )
    return parts[0], parts[1]


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option(
    "--format",
    "-f",
    "fmt",
    default="md",
    show_default=True,
    metavar="md|csv|latex|html",
    help="md/latex: the report to stdout (or --out FILE); csv: the main table to stdout, "
    "or every table as DIR/<table>.csv with --out DIR; html: one self-contained file "
    "(default RUN_DIR/report/report.html).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=str),
    default=None,
    help="Output file (md, latex, html) or directory (csv).",
)
@click.option(
    "--figures",
    "figures_dir",
    type=click.Path(path_type=str),
    default=None,
    help="Directory for the PNG and SVG figures [default: RUN_DIR/report].",
)
@click.option("--no-figures", is_flag=True, help="Skip the figures (md, latex).")
@click.option(
    "--generator",
    default=None,
    metavar="METHOD",
    help="The method that generated the data, for the ties table [default: from the run's config].",
)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    metavar="A,B",
    help="Also report the paired per-trial differences A - B (repeatable).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing --out file, or same-named --figures files, that ntklab did not "
    "write (never a store or SQLite file).",
)
def report_cmd(run_dir, fmt, out, figures_dir, no_figures, generator, pairs, force):
    """Tables, analyses and figures of the run in RUN_DIR (finished trials only).

    Markdown goes to stdout and the figures (PNG + SVG) to RUN_DIR/report/; a run still in
    progress or with failed trials is reported on what is finished, with a note saying so.
    """
    from .report import ReportError, load_run, run_notes, write_report

    fmt = fmt.lower()
    if fmt not in ("md", "csv", "latex", "html"):
        raise UserError(f"unknown --format {fmt!r}; choose one of md, csv, latex, html")
    pair_list = tuple(_parse_pair(p) for p in pairs)
    try:
        run = load_run(run_dir)
        for text, pair in zip(pairs, pair_list, strict=True):
            for name in pair:
                if name not in run.method_names:
                    raise UserError(
                        f"--pair {text}: {name!r} is not a method of run {run_dir}; choose "
                        f"among {', '.join(run.method_names)}"
                    )
        run.require_finished()
        options = dict(
            figures_dir=figures_dir,
            figures=not no_figures or fmt == "html",
            generator=generator,
            pairs=pair_list,
        )
        text = write_report(run, fmt, out, force=force, **options)
    except ReportError as exc:
        raise UserError(str(exc)) from None
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(
            f"wrote {out if out is not None else run.path / 'report' / 'report.html'}", err=True
        )
    for note in run_notes(run):
        click.echo(f"note: {note}", err=True)


# ---- export ---------------------------------------------------------------------------------
@main.command("export")
@click.argument("run_dir", type=click.Path(path_type=str))
@click.argument("out_file", type=click.Path(path_type=str))
@click.option(
    "--force", is_flag=True, help="Replace OUT_FILE if it exists (a user's file, never a store)."
)
def export_cmd(run_dir, out_file, force):
    """Copy the results of RUN_DIR into OUT_FILE, one self-contained SQLite file.

    Safe while the run is still going (SQLite's backup API on a read-only connection).
    `ntklab status OUT_FILE` reads the copy; for a report, put it in a directory as
    results.sqlite.
    """
    from .store import StoreError, export

    try:
        path, n_done = export(run_dir, out_file, force=force)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"exported {n_done} done trial(s) of {run_dir} to {path} (one self-contained file)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
