"""The Typer application objects. Command modules register themselves on these."""

import typer

app = typer.Typer(
    name="elbokit", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,
    help="Latent-variable models fitted by maximizing the ELBO: PCA, PPCA, FA, VAEs.",
)
fit_app = typer.Typer(no_args_is_help=True, help="Fit a model and save it to a run directory.")
app.add_typer(fit_app, name="fit")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"elbokit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version,
                                          is_eager=True, help="Print the version and exit.")):
    """Latent-variable models fitted by maximizing the ELBO: PCA, PPCA, FA, VAEs."""
