"""What defparam's smuggler imports from its `lib` package (not in its published snapshot):
payload rendering, a plain or TLS socket, and terminal colours. Written for ringgate's
scripts/smuggling-tools; smuggler.py itself runs unmodified."""
