"""``ntklab verify``: analytic kernels against their finite networks (:mod:`ntklab.verify`).

The flags' defaults and help are read from :mod:`ntklab.verify_defaults`, the defaults of
the functions the command calls.
"""

from __future__ import annotations

import sys

import click

from . import verify_defaults as defaults
from .cli_errors import UserError


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


def _csv_activations(value: str) -> list[str]:
    """Split at the commas outside parentheses: 'relu,abrelu(-0.5, 1)' -> two specs."""
    out, depth, current = [], 0, ""
    for ch in value:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    return [v for v in out if v]


@click.command()
@click.option(
    "--width", type=int, default=None,
    help=f"Hidden width of the random networks [default: {defaults.WIDTH}; "
    f"{defaults.PUBLISHED_WIDTH} with --published].",
)  # fmt: skip
@click.option(
    "--samples", type=int, default=None,
    help=f"Random networks per architecture [default: {defaults.N_SAMPLES}; "
    f"{defaults.PUBLISHED_N_SAMPLES} with --published].",
)  # fmt: skip
@click.option(
    "--points", default=defaults.N_POINTS, show_default=True,
    help=f"Unit-norm input points (in R^{defaults.IN_FEATURES}; the seed's data in R^15 with "
    "--published).",
)  # fmt: skip
@click.option(
    "--seed", default=defaults.SEED, show_default=True, help="Root seed (points and networks)."
)
@click.option(
    "--depths", default=",".join(map(str, defaults.DEPTHS)), show_default=True,
    help="Comma-separated depths.",
)  # fmt: skip
@click.option(
    "--parameterizations", default=",".join(defaults.PARAMETERIZATIONS), show_default=True,
    help="Comma-separated parameterizations.",
)  # fmt: skip
@click.option(
    "--nngp-estimator", type=click.Choice(["last_hidden", "outputs"]),
    default=defaults.NNGP_ESTIMATOR,
    show_default=True, help="outputs: raw f(x)f(z) (needs many more samples).",
)  # fmt: skip
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available).")
@click.option(
    "--activations", default=",".join(defaults.ACTIVATIONS), show_default=True,
    help="Comma-separated activations (relu, erf, leaky_relu, 'abrelu(a, b)', gelu, tanh, "
    "softplus, silu), or 'all'; each row with a negative control (another activation's kernel).",
)  # fmt: skip
@click.option(
    "--published", is_flag=True,
    help="Instead: which of the seed's nine published kernels (SPEC 6) are kernels of a "
    "finite network, under both normalizations (ignores --depths, --parameterizations).",
)  # fmt: skip
def verify(
    width, samples, points, seed, depths, parameterizations, nngp_estimator, device,
    activations, published,
):  # fmt: skip
    """Compare analytic NNGP/NTK with Monte-Carlo estimates from finite networks (SPEC §5).

    Prints one row per parameterization, depth and kernel; exits non-zero if any row fails.
    With --published, one row per published formula and normalization; informative (exit 0)
    unless a corrected formula that is a network kernel fails its Monte-Carlo check.
    """
    from .verify import format_published_table, format_table, verify_published
    from .verify import verify as run_verify

    if published:
        width = defaults.PUBLISHED_WIDTH if width is None else width
        samples = defaults.PUBLISHED_N_SAMPLES if samples is None else samples
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
    width = defaults.WIDTH if width is None else width
    samples = defaults.N_SAMPLES if samples is None else samples
    try:
        rows = run_verify(
            width=width, n_samples=samples, n_points=points, seed=seed,
            depths=_csv_ints(depths, "depths"),
            parameterizations=[p.strip() for p in parameterizations.split(",") if p.strip()],
            nngp_estimator=nngp_estimator, device=device,
            activations="all" if activations.strip() == "all" else _csv_activations(activations),
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(str(exc)) from None
    click.echo(format_table(rows))
    failed = sum(not r.passed for r in rows)
    click.echo(f"{len(rows) - failed}/{len(rows)} rows pass (width={width}, samples={samples})")
    kept = [r for r in rows if not r.control_rejected]
    if kept:
        click.echo(f"{len(kept)} negative control(s) NOT rejected: the test cannot tell them apart")
    if failed or kept:
        sys.exit(1)
