"""``python -m corridor.cli``."""

from corridor.cli.main import main

main()
