import click


@click.group()
def cli() -> None:
    """Closeloop operations."""
