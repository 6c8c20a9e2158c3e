"""Readers and checkers of the MountainSort dataset files (raw.mda, geom.csv, params.json).

numpy and jsonschema are imported only where data is read or params are checked, so that
reading an .mda header stays as fast as the interpreter's start-up.
"""
