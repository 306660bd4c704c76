"""The ``ntklab`` command line: verify, run, presets, status, report.

Each command parses and validates its flags here and calls the library; errors that a user
can fix are printed as one line (``error: ...``) with a non-zero exit code.
"""

from __future__ import annotations

import sys

import click


class UserError(click.ClickException):
    """A one-line error for the user (exit code 2)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ntklab")
def main() -> None:
    """ntklab: test neural tangent kernel theory against real trained networks."""


# ---- verify (issue 2) -------------------------------------------------------------------
def _csv_ints(value: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"--{name} must be comma-separated integers, e.g. 1,2,3; got {value!r}"
        ) from None
    if not out or min(out) < 1:
        raise UserError(f"--{name} must be comma-separated integers >= 1; got {value!r}")
    return out


@main.command()
@click.option(
    "--width", type=int, default=None,
    help="Hidden width of the random networks [default: 128; 256 with --published].",
)  # fmt: skip
@click.option(
    "--samples", type=int, default=None,
    help="Random networks per architecture [default: 200; 400 with --published].",
)  # fmt: skip
@click.option(
    "--points", default=8, show_default=True,
    help="Unit-norm input points (in R^4; the seed's data in R^15 with --published).",
)  # fmt: skip
@click.option("--seed", default=0, show_default=True, help="Root seed (points and networks).")
@click.option("--depths", default="1,2,3", show_default=True, help="Comma-separated depths.")
@click.option(
    "--parameterizations", default="jacot,arora,paper", show_default=True,
    help="Comma-separated parameterizations.",
)  # fmt: skip
@click.option(
    "--nngp-estimator", type=click.Choice(["last_hidden", "outputs"]), default="last_hidden",
    show_default=True, help="outputs: raw f(x)f(z) (needs many more samples).",
)  # fmt: skip
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available).")
@click.option(
    "--published", is_flag=True,
    help="Instead: which of the seed's nine published kernels (SPEC 6) are kernels of a "
    "finite network, under both normalizations (ignores --depths, --parameterizations).",
)  # fmt: skip
def verify(
    width, samples, points, seed, depths, parameterizations, nngp_estimator, device, published
):
    """Compare analytic NNGP/NTK with Monte-Carlo estimates from finite networks (SPEC §5).

    Prints one row per parameterization, depth and kernel; exits non-zero if any row fails.
    With --published, one row per published formula and normalization; informative (exit 0)
    unless a corrected formula that is a network kernel fails its Monte-Carlo check.
    """
    from .verify import format_published_table, format_table, verify_published
    from .verify import verify as run_verify

    if published:
        width = 256 if width is None else width
        samples = 400 if samples is None else samples
        try:
            rows = verify_published(
                width=width, n_samples=samples, n_points=points, seed=seed,
                nngp_estimator=nngp_estimator, device=device,
            )  # fmt: skip
        except ValueError as exc:
            raise UserError(str(exc)) from None
        click.echo(format_published_table(rows))
        failed = [r for r in rows if r.must_pass and not r.passed]
        required = sum(r.must_pass for r in rows)
        click.echo(
            f"{required - len(failed)}/{required} corrected network kernels pass "
            f"(width={width}, samples={samples})"
        )
        if failed:
            sys.exit(1)
        return
    width = 128 if width is None else width
    samples = 200 if samples is None else samples
    try:
        rows = run_verify(
            width=width, n_samples=samples, n_points=points, seed=seed,
            depths=_csv_ints(depths, "depths"),
            parameterizations=[p.strip() for p in parameterizations.split(",") if p.strip()],
            nngp_estimator=nngp_estimator, device=device,
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(str(exc)) from None
    click.echo(format_table(rows))
    failed = sum(not r.passed for r in rows)
    click.echo(f"{len(rows) - failed}/{len(rows)} rows pass (width={width}, samples={samples})")
    if failed:
        sys.exit(1)


# ---- run / presets / status (issue 4) ---------------------------------------------------
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
    help="torch threads per worker [default: cores // workers].",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Send the trials to this existing Dask scheduler (e.g. a dask-jobqueue SLURM cluster).",
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
def run_cmd(source, trials, out, workers, threads, scheduler, dask_local, overrides, device, only):
    """Run (or resume) the study CONFIG_OR_PRESET (a preset name or a TOML file)."""
    from pathlib import Path

    from .config import ConfigError, load_config
    from .execution import ExecutionError, run_study
    from .store import StoreError

    if trials is not None and trials < 1:
        raise UserError(f"--trials must be a positive integer; got {trials}")
    only_names = None
    if only is not None:
        only_names = [n.strip() for n in only.split(",") if n.strip()]
        if not only_names:
            raise UserError(f"--only takes method names separated by commas, e.g. NN1,NTK-NN1-T; got {only!r}")
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
            echo=click.echo,
        )
    except (ConfigError, ExecutionError, StoreError, ValueError) as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        raise UserError(
            f"interrupted; finished trials are stored in {out}: rerun the same command to resume"
        ) from None
    click.echo(
        f"results: {Path(out) / 'results.sqlite'} ({summary.done} trials run now, "
        f"{summary.skipped} before, {summary.failed} failed; {summary.wall_time:.0f}s)"
    )
    click.echo(f"report:  ntklab report {out}")
    if summary.failed:
        for line in summary.failures[:5]:
            click.echo(f"failed: {line}", err=True)
        raise UserError(
            f"{summary.failed} trial(s) failed; rerun the same command to retry them "
            f"(see ntklab status {out})"
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
    click.echo(
        f"trials: {st['done']} done, {st['failed']} failed, {st['total']} total "
        f"({st['total'] - st['done']} to run)"
    )
    click.echo(
        f"wall time: {st['wall_time_sum']:.1f}s in done trials ({st['wall_time_mean']:.1f}s per trial)"
    )
    for m in st["methods"]:
        err = f", {m['errors']} errors" if m["errors"] else ""
        click.echo(f"  {m['method']:<10} {m['rmse_rows']} results{err}")


# ---- report (issue 5) -------------------------------------------------------------------
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
def report_cmd(run_dir, fmt, out, figures_dir, no_figures, generator, pairs):
    """Tables, analyses and figures of the run in RUN_DIR (finished trials only).

    Markdown goes to stdout and the figures (PNG + SVG) to RUN_DIR/report/; a run still in
    progress or with failed trials is reported on what is finished, with a note saying so.
    """
    from .report import ReportError, load_run, write_report

    fmt = fmt.lower()
    if fmt not in ("md", "csv", "latex", "html"):
        raise UserError(f"unknown --format {fmt!r}; choose one of md, csv, latex, html")
    pair_list = tuple(_parse_pair(p) for p in pairs)
    try:
        run = load_run(run_dir)
        run.require_finished()
        text = write_report(
            run,
            fmt,
            out,
            figures_dir=figures_dir,
            figures=not no_figures or fmt == "html",
            generator=generator,
            pairs=pair_list,
        )
    except ReportError as exc:
        raise UserError(str(exc)) from None
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(
            f"wrote {out if out is not None else run.path / 'report' / 'report.html'}", err=True
        )
    for note in run.notes():
        click.echo(f"note: {note}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
