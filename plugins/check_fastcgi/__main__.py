"""``python -m check_fastcgi``."""

from .cli import main

main()
