""".proto sources of the non-OTLP wire formats AIRIS speaks, their generated Python modules
(committed) and the script that generates them (`python -m proto.generate`)."""
