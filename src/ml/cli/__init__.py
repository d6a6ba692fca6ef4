"""Presentation for the command-line faces (progress display, plots); not the library."""
