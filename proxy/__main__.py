"""``python -m proxy`` is the ``dpp`` command."""
from .cli import main

main(prog_name="dpp")
