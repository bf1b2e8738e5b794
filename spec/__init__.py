"""The pure core of mdl: values, formats and errors, with no I/O beyond what a caller hands in."""
