"""``python -m api``: the service with a header-read timeout (:mod:`api.server`)."""

from api.server import main

main()
