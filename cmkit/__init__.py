"""cmkit: package, validate, test and upload DataRobot custom inference models."""

__version__ = "0.1.0"
