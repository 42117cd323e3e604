"""Errors meant for the user: the command line prints them without a traceback."""


class UserError(Exception):
    """Bad input from the user: a message naming the file, line, value and what was expected."""
